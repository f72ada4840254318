package driver

// LikePattern is text as a SQL LIKE pattern matching any string containing
// it, with %, _ and the escape character \ escaped (use ESCAPE '\').
func LikePattern(text string) string {
	out := make([]byte, 0, len(text)+2)
	out = append(out, '%')
	for i := 0; i < len(text); i++ {
		switch c := text[i]; c {
		case '%', '_', '\\':
			out = append(out, '\\', c)
		default:
			out = append(out, c)
		}
	}
	return string(append(out, '%'))
}
