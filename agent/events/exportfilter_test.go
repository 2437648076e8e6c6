package events

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
)

func TestParseExportFilters(t *testing.T) {
	lines := `{"event_set":["PROCESS_EXEC"],"namespace":["default"]}
{"binary_regex":["^/bin/(ba)?sh$"]}
`
	fs, err := ParseExportFilters(lines)
	require.NoError(t, err)
	require.Len(t, fs, 2)
	assert.Equal(t, []string{"PROCESS_EXEC"}, fs[0].EventSet)
	assert.Equal(t, []string{api.EventProcessExec}, fs[0].kinds)
	assert.Equal(t, []string{"^/bin/(ba)?sh$"}, fs[1].BinaryRegex)

	list, err := ParseExportFilters(` [{"event_set":["PROCESS_EXEC"],"namespace":["default"]}, {"binary_regex":["^/bin/(ba)?sh$"]}] `)
	require.NoError(t, err)
	assert.Equal(t, fs, list, "a JSON list is the same filters")

	for _, blank := range []string{"", "  \n"} {
		fs, err := ParseExportFilters(blank)
		require.NoError(t, err)
		assert.Empty(t, fs)
	}

	for _, tc := range []struct{ in, err string }{
		{`{"event_set":["PROCESS_FORK"]}`, `export filter 1: unknown event type "PROCESS_FORK" in event_set (want PROCESS_EXEC, PROCESS_EXIT, PROCESS_CONNECT, PROCESS_THROTTLE or PROCESS_TRACEPOINT)`},
		{`{}` + "\n" + `{"pods":["a"]}`, `export filter 2: json: unknown field "pods"`},
		{`{"pod_regex":["("]}`, "export filter 1: pod_regex \"(\": error parsing regexp: missing closing ): `(`"},
		{`{"binary_regex":"sh"}`, "export filter 1: json: cannot unmarshal string into Go struct field ExportFilter.binary_regex of type []string"},
		{`{"namespace":["a"]`, "export filter 1: unexpected EOF"},
		{`[{}] {}`, "export filter list: trailing data after the list"},
		{`[{"x":1}]`, `export filter list: json: unknown field "x"`},
	} {
		_, err := ParseExportFilters(tc.in)
		assert.EqualError(t, err, tc.err, tc.in)
	}
}

func TestExportFilterMatch(t *testing.T) {
	shell := event(api.EventProcessExec, "default/web-1", "/bin/sh", 1)
	curl := event(api.EventProcessConnect, "default/web-1", "/usr/bin/curl", 2)
	host := event(api.EventProcessExec, "", "/usr/bin/kubelet", 3)
	dns := event(api.EventProcessExit, "kube-system/coredns-5", "/coredns", 4)
	throttle := event(api.EventProcessThrottle, "kube-system/coredns-5", "", 0)
	all := []*api.ProcessEvent{shell, curl, host, dns, throttle}

	tests := []struct {
		name        string
		allow, deny string
		want        []uint32 // pids of the passing events (throttle: 0)
	}{
		{"no filters", "", "", []uint32{1, 2, 3, 4, 0}},
		{"empty filter allows all", `{}`, "", []uint32{1, 2, 3, 4, 0}},
		{"empty filter denies all", "", `{}`, []uint32{}},
		{"event set", `{"event_set":["PROCESS_EXEC","PROCESS_THROTTLE"]}`, "", []uint32{1, 3, 0}},
		{"namespace", `{"namespace":["default"]}`, "", []uint32{1, 2}},
		{"host namespace is empty", `{"namespace":[""]}`, "", []uint32{3}},
		{"pod regex", `{"pod_regex":["^coredns-"]}`, "", []uint32{4, 0}},
		{"binary regex", `{"binary_regex":["sh$","^/usr/"]}`, "", []uint32{1, 2, 3}},
		{"fields of one filter all match", `{"namespace":["default"],"binary_regex":["curl"]}`, "", []uint32{2}},
		{"any allow filter", `{"namespace":["kube-system"]}` + "\n" + `{"binary_regex":["curl"]}`, "", []uint32{2, 4, 0}},
		{"deny", "", `{"namespace":["kube-system"]}`, []uint32{1, 2, 3}},
		{"deny beats allow", `{"namespace":["default"]}`, `{"event_set":["PROCESS_CONNECT"]}`, []uint32{1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs, err := ParseExportFilterLists(tc.allow, tc.deny)
			require.NoError(t, err)
			got := []uint32{}
			for _, ev := range all {
				if fs.Pass(ev) {
					got = append(got, pids([]*api.ProcessEvent{ev})...)
				}
			}
			assert.Equal(t, tc.want, got)
		})
	}
	_, err := ParseExportFilterLists(`{}`, `{"x":1}`)
	assert.EqualError(t, err, `export denylist: export filter 1: json: unknown field "x"`)
	_, err = ParseExportFilterLists(`nope`, ``)
	assert.ErrorContains(t, err, "export allowlist: export filter 1: invalid character")
}

func TestExportFilterPolicyEvents(t *testing.T) {
	kill := event(api.EventProcessTracepoint, "default/a", "/usr/bin/nc", 1)
	exec := event(api.EventProcessExec, "default/a", "/usr/bin/nc", 2)
	fs, err := ParseExportFilterLists(`{"event_set":["PROCESS_TRACEPOINT"]}`, "")
	require.NoError(t, err)
	assert.True(t, fs.Pass(kill))
	assert.False(t, fs.Pass(exec))
	fs, err = ParseExportFilterLists(`{"binary_regex":["/nc$"],"namespace":["default"]}`, `{"event_set":["PROCESS_EXEC"]}`)
	require.NoError(t, err)
	assert.True(t, fs.Pass(kill), "the subject of a policy event is its process")
	assert.False(t, fs.Pass(exec))
}
