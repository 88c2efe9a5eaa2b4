package handshake

import (
	"math"
	"strconv"
	"strings"
)

// perlNum converts s to a number the way Perl's numeric context does:
// leading whitespace is skipped, then the longest prefix that forms a
// decimal number (sign, digits, fraction, exponent) is used; "inf",
// "infinity" and "nan" are recognised case-insensitively; anything else
// gives 0. So "1abc" is 1, "1.5" is 1.5, "" and "0x1" are 0.
func perlNum(s string) float64 {
	s = strings.TrimLeft(s, " \t\n\r\f\v")
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	rest := strings.ToLower(s[i:])
	switch {
	case strings.HasPrefix(rest, "inf"):
		if s[0] == '-' {
			return math.Inf(-1)
		}
		return math.Inf(1)
	case strings.HasPrefix(rest, "nan"):
		return math.NaN()
	}
	digits := 0
	for i < len(s) && isDigit(s[i]) {
		i++
		digits++
	}
	if i < len(s) && s[i] == '.' {
		j := i + 1
		frac := 0
		for j < len(s) && isDigit(s[j]) {
			j++
			frac++
		}
		if digits > 0 || frac > 0 {
			i = j
			digits += frac
		}
	}
	if digits == 0 {
		return 0
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		k := j
		for k < len(s) && isDigit(s[k]) {
			k++
		}
		if k > j {
			i = k
		}
	}
	f, err := strconv.ParseFloat(s[:i], 64)
	if err != nil {
		// Only range errors are possible here; ParseFloat returns ±Inf
		// or 0 for them, which is what Perl gives too.
		return f
	}
	return f
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// perlInt is Perl's int(): the numeric value truncated toward zero.
func perlInt(s string) float64 { return math.Trunc(perlNum(s)) }

// isUpgradeProtocol reports whether p matches Perl's /^aemp-\w+$/.
func isUpgradeProtocol(p string) bool {
	rest, ok := strings.CutPrefix(p, "aemp-")
	if !ok || rest == "" {
		return false
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !(c == '_' || isDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
			return false
		}
	}
	return true
}
