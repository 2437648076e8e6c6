package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestSplitDeclAndClassify(t *testing.T) {
	for decl, want := range map[string][3]string{
		"const char * filename":    {"const char *", "filename", "TypeString, false, 0"},
		"char * buf":               {"char *", "buf", "TypeInt, false, 8"},
		"const char *const * argv": {"const char *const *", "argv", "TypeInt, false, 8"},
		"int dfd":                  {"int", "dfd", "TypeInt, true, 4"},
		"const int ruleset_fd":     {"const int", "ruleset_fd", "TypeInt, true, 4"},
		"unsigned long flags":      {"unsigned long", "flags", "TypeInt, false, 8"},
		"umode_t mode":             {"umode_t", "mode", "TypeInt, false, 2"},
		"pid_t pid":                {"pid_t", "pid", "TypeInt, true, 4"},
		"const enum landlock_rule_type rule_type": {"const enum landlock_rule_type", "rule_type", "TypeInt, false, 4"},
		"cap_user_header_t header":                {"cap_user_header_t", "header", "TypeInt, false, 8"},
	} {
		ctype, name, err := splitDecl(decl)
		assert.NoError(t, err, decl)
		assert.Equal(t, want, [3]string{ctype, name, classify(ctype, name)}, decl)
	}
	_, _, err := splitDecl("int")
	assert.Error(t, err)
}
