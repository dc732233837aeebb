package users

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/jackc/pgx/v5"
	"golang.org/x/text/unicode/norm"

	"github.com/millrace/millrace"
)

// ErrLookAlike is returned, wrapped, for a new user name that looks like an
// existing user's.
var ErrLookAlike = errors.New("looks like another user's name")

// RefusedNameError is returned by ProxyUser for a name that the sign-in
// proxy sends and that may not be a user's (see CheckName and
// ErrLookAlike).
type RefusedNameError struct{ Err error }

// Error is the reason, written for the person refused.
func (e *RefusedNameError) Error() string { return e.Err.Error() }

// Unwrap returns the reason.
func (e *RefusedNameError) Unwrap() error { return e.Err }

// checkLetters refuses a name, already in NFKC, whose letters look like
// another name's: letters (and digits other than 0-9) of more than one
// script, such as "аdmin" with a Cyrillic а; or letters of a script other
// than Latin that all look like Latin letters, such as "раураl" in
// Cyrillic. Han, Hiragana, Katakana, Bopomofo and Hangul count as one
// script, as Japanese, Chinese and Korean names mix them.
func checkLetters(name string) error {
	var scripts []string
	allLookLatin, letters := true, 0
	for _, r := range name {
		if r < 0x80 && !unicode.IsLetter(r) {
			continue // ASCII digits and . _ @ + -
		}
		s := scriptOf(r)
		if !slices.Contains(scripts, s) {
			scripts = append(scripts, s)
		}
		if unicode.IsLetter(r) {
			letters++
			if _, ok := latinLookAlikes[r]; !ok {
				allLookLatin = false
			}
		}
	}
	switch {
	case len(scripts) > 1:
		return millrace.Permanent(fmt.Errorf("user name %+q mixes the letters of %s: use the letters of one script", name, strings.Join(scripts, " and ")))
	case len(scripts) == 1 && scripts[0] != "Latin" && letters > 0 && allLookLatin:
		return millrace.Permanent(fmt.Errorf("user name %+q: every letter is a %s letter that looks like a Latin one (%q): write it in Latin letters", name, scripts[0], skeleton(name)))
	}
	return nil
}

// scriptOf names the script of a letter or digit: Latin for ASCII letters,
// CJK for the scripts of Chinese, Japanese and Korean (and the signs they
// share, such as the prolonged sound mark ー), Common for the letters of
// no script.
func scriptOf(r rune) string {
	if r < 0x80 {
		return "Latin"
	}
	for _, s := range []string{"Han", "Hiragana", "Katakana", "Bopomofo", "Hangul"} {
		if unicode.Is(unicode.Scripts[s], r) {
			return "CJK"
		}
	}
	if unicode.Is(unicode.Common, r) {
		if r >= 0x3000 && r <= 0x30ff {
			return "CJK"
		}
		return "Common"
	}
	for name, table := range unicode.Scripts {
		if unicode.Is(table, r) {
			return name
		}
	}
	return "Unknown"
}

// latinLookAlikes maps letters to the Latin letter, lower-case, that they
// look like in common fonts: the Cyrillic, Greek, Armenian and Cherokee
// letters of Unicode's confusables that take a name for another, and the
// ASCII pairs I and l, 1 and l, 0 and o. Not the whole of confusables.txt:
// together with one script per name, enough to tell a look-alike of a
// Latin name.
var latinLookAlikes = map[rune]rune{
	// Cyrillic.
	'а': 'a', 'е': 'e', 'о': 'o', 'р': 'p', 'с': 'c', 'у': 'y', 'х': 'x', 'ѕ': 's', 'і': 'i', 'ј': 'j',
	'ԁ': 'd', 'һ': 'h', 'ӏ': 'l', 'ԛ': 'q', 'ԝ': 'w', 'ү': 'y', 'ѵ': 'v', 'к': 'k',
	'А': 'a', 'В': 'b', 'Е': 'e', 'К': 'k', 'М': 'm', 'Н': 'h', 'О': 'o', 'Р': 'p', 'С': 'c', 'Т': 't',
	'У': 'y', 'Х': 'x', 'Ѕ': 's', 'І': 'l', 'Ј': 'j', 'Ү': 'y', 'Ԛ': 'q', 'Ԝ': 'w', 'Ӏ': 'l', 'Ѵ': 'v',
	// Greek.
	'α': 'a', 'ο': 'o', 'ν': 'v', 'ρ': 'p', 'υ': 'u', 'ι': 'i', 'κ': 'k', 'χ': 'x', 'γ': 'y', 'ϲ': 'c',
	'ϳ': 'j', 'η': 'n',
	'Α': 'a', 'Β': 'b', 'Ε': 'e', 'Ζ': 'z', 'Η': 'h', 'Ι': 'l', 'Κ': 'k', 'Μ': 'm', 'Ν': 'n', 'Ο': 'o',
	'Ρ': 'p', 'Τ': 't', 'Υ': 'y', 'Χ': 'x', 'Ϲ': 'c',
	// Armenian.
	'օ': 'o', 'ս': 'u', 'հ': 'h', 'ո': 'n', 'ց': 'g', 'զ': 'q', 'Օ': 'o', 'Ս': 'u', 'Տ': 's',
	// Cherokee.
	'Ꭺ': 'a', 'Ᏼ': 'b', 'Ꮯ': 'c', 'Ꭰ': 'd', 'Ꭼ': 'e', 'Ꮐ': 'g', 'Ꮋ': 'h', 'Ꭻ': 'j', 'Ꮶ': 'k', 'Ꮮ': 'l',
	'Ꮇ': 'm', 'Ꮲ': 'p', 'Ꮢ': 'r', 'Ꮪ': 's', 'Ꭲ': 't', 'Ꮩ': 'v', 'Ꮃ': 'w', 'Ꮓ': 'z',
	// Latin and ASCII.
	'ı': 'i', 'ɩ': 'i', 'I': 'l', '1': 'l', '0': 'o',
}

// fold is a name without case and accents: NFKD, combining marks dropped,
// lower-case.
func fold(name string) string {
	var b strings.Builder
	for _, r := range norm.NFKD.String(name) {
		if !unicode.Is(unicode.Mn, r) {
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// skeleton is what a name looks like: fold, after each letter that looks
// like a Latin one has become it, and rn read as m, vv as w.
func skeleton(name string) string {
	var b strings.Builder
	for _, r := range norm.NFKD.String(name) {
		if unicode.Is(unicode.Mn, r) {
			continue
		}
		if l, ok := latinLookAlikes[r]; ok {
			r = l
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return strings.NewReplacer("rn", "m", "vv", "w").Replace(b.String())
}

// LookAlike reports whether two names are told apart only by case, accents
// or letters that look alike (see skeleton): "admin", "Admin", "ädmin",
// "аdmin" with a Cyrillic а, "adrnin".
func LookAlike(a, b string) bool {
	return fold(a) == fold(b) || skeleton(a) == skeleton(b)
}

// checkLookAlike refuses, in tx (which has locked the users), a new user
// name that looks like an existing user's other than itself.
func checkLookAlike(ctx context.Context, tx pgx.Tx, name string) error {
	rows, err := tx.Query(ctx, "SELECT name FROM millrace.users")
	if err != nil {
		return fmt.Errorf("read user names: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("read user names: %w", err)
	}
	for _, n := range names {
		if n != name && LookAlike(n, name) {
			return millrace.Permanent(fmt.Errorf("user name %+q %w, %+q: choose a name that cannot be taken for it", name, ErrLookAlike, n))
		}
	}
	return nil
}
