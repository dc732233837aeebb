package users_test

import (
	"testing"

	"github.com/millrace/millrace/users"
)

// TestCheckNameRefusesLookAlikes: "аdmin" with a Cyrillic а, through the
// sign-in proxy, made a viewer named like the admin.
func TestCheckNameRefusesLookAlikes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"admin", true},
		{"olga.k@example.com", true},
		{"админ", true},        // one script
		{"山田たろう", true},        // Japanese: Han and Hiragana
		{"\u0430dmin", false},  // Cyrillic а and Latin
		{"p\u0430ypal", false}, // the same inside
		{"ad\u200dmin", false}, // a zero-width joiner is not a letter
		{"\uff41dmin", false},  // a fullwidth a: NFKC makes it admin
		{"admi\u0301n", false}, // a combining accent: not NFKC composed
		{"αdmin", false},       // Greek alpha and Latin
	} {
		if err := users.CheckName(tc.name); (err == nil) != tc.ok {
			t.Errorf("CheckName(%q) = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}
