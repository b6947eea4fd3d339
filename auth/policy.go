package auth

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/trustelem/zxcvbn"
	"github.com/trustelem/zxcvbn/match"

	"github.com/passflow/passflow/fault"
)

// PasswordPolicy is what a new password must be, by NIST SP 800-63B's rules
// for passwords: long enough, short enough to hash at a bounded cost, and
// not common or easily guessed — judged by zxcvbn (its lists of common and
// breached passwords, words, names, keyboard patterns, dates and the
// account's own name), never by composition rules.
type PasswordPolicy struct {
	// MinChars is the least number of characters (below MinPasswordChars,
	// MinPasswordChars).
	MinChars int
	// MinScore is the zxcvbn score, 0 to 4, a password must reach: 1 is
	// about 10³ guesses, 2 10⁶, 3 10⁸, 4 10¹⁰. 0 judges nothing.
	MinScore int
}

// DefaultMinPasswordScore refuses what zxcvbn finds within a million
// guesses: every common or breached password on its lists, and small
// variations of them.
const DefaultMinPasswordScore = 2

// maxScoredRunes bounds what zxcvbn reads: its cost grows faster than the
// length (3 ms for 32 random characters, 50 ms for 64, seconds for 1,000),
// so a longer password is judged by its first 32 characters, which must
// then be hard to guess on their own.
const maxScoredRunes = 32

// Check returns an invalid_request error about field when password breaks
// the policy, saying why; related are words the account is known by (its
// username, its email) that a password should not be built on. The error
// never repeats the password.
func (p PasswordPolicy) Check(field, password string, related ...string) error {
	if err := CheckPassword(field, password); err != nil {
		return err
	}
	if min := max(p.MinChars, MinPasswordChars); utf8.RuneCountInString(password) < min {
		return fault.Invalid(field, fmt.Sprintf("password must be at least %d characters", min))
	}
	if p.MinScore <= 0 {
		return nil
	}
	scored := password
	if utf8.RuneCountInString(scored) > maxScoredRunes {
		scored = string([]rune(scored)[:maxScoredRunes])
	}
	var inputs []string
	for _, r := range related {
		if r != "" {
			inputs = append(inputs, strings.ToLower(r))
		}
	}
	res := zxcvbn.PasswordStrength(scored, inputs)
	if res.Score >= p.MinScore {
		return nil
	}
	return fault.Invalid(field, fmt.Sprintf("password is too easy to guess (strength %d of 4, at least %d needed): %s; a few unrelated words make a strong one",
		res.Score, p.MinScore, weakness(res.Sequence)))
}

// weakness names what made a password guessable, from zxcvbn's matches,
// without quoting any part of it.
func weakness(seq []*match.Match) string {
	var why []string
	add := func(s string) {
		for _, w := range why {
			if w == s {
				return
			}
		}
		why = append(why, s)
	}
	for _, m := range seq {
		switch m.Pattern {
		case "dictionary":
			switch m.DictionaryName {
			case "passwords":
				add("it is or contains a common password")
			case "user_inputs":
				add("it contains the account's name")
			default:
				add("it is built on common words or names")
			}
		case "spatial":
			add("it follows a keyboard pattern")
		case "repeat":
			add("it repeats itself")
		case "sequence":
			add("it is a sequence such as abc or 123")
		case "date", "regex":
			add("it is built on a date or year")
		}
	}
	if len(why) == 0 {
		return "it is too short for the characters it uses"
	}
	return strings.Join(why, ", ")
}
