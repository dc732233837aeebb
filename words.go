package millrace

import "strings"

// Words writes a list for a sentence, joining its last two items with
// conjunction: Words([a b c], "and") is "a, b and c".
func Words(list []string, conjunction string) string {
	if len(list) < 2 {
		return strings.Join(list, "")
	}
	return strings.Join(list[:len(list)-1], ", ") + " " + conjunction + " " + list[len(list)-1]
}
