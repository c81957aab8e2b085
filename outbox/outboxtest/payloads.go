package outboxtest

// RealWorldPayloads are JSON values as applications write them, with the
// characters that break careless code (escapes, quotes, backslashes,
// control characters, U+2028, non-ASCII, emoji, markup, deep nesting,
// numbers at the edges of float64). jsonb normalises some of them (it
// writes U+2028 unescaped and numbers in full), so compare what a receiver
// gets with payload::text as stored, and parsed with the value written.
// None contains \u0000, which jsonb refuses.
var RealWorldPayloads = []string{
	`{"note": "line1\nline2"}`,
	`{"quote": "say \"hi\""}`,
	`{"path": "C:\\Users\\ada"}`,
	`{"tab": "a\tb", "cr": "a\rb", "bs": "\b\f"}`,
	`{"ctl": "\u0001\u001f"}`,
	`{"ls": "a\u2028b\u2029c"}`,
	`{"name": "Zoë Ångström", "city": "Zürich"}`,
	`{"emoji": "🎉👩‍💻", "cjk": "推荐"}`,
	`{"html": "<script>alert('x')</script> & <b>bold</b>"}`,
	`{"esc": "\\n is not a newline", "slash": "a/b\\/c"}`,
	`{"d": {"d": {"d": {"d": {"d": {"d": {"d": {"d": {"d": {"d": [[[[[[1]]]]]]}}}}}}}}}}`,
	`{"max": 1.7976931348623157e308, "min": 5e-324, "neg": -1.7976931348623157e308}`,
	`{"big": 9007199254740993, "small": -9007199254740993, "zero": -0, "frac": 0.1}`,
	`[1, "two", null, true, false, {}, []]`,
	`"just a string with \\ and \""`,
	`null`,
	`{}`,
}
