// Package bpfgen is the bpf2go output for the C in bpf/: the compiled
// objects (lxc.c pod programs, sock.c socket-LB hooks, host.c host device
// programs, xdp.c host device XDP program, process.c process sensor) and Go mirrors of the C types and
// enums they share with the agent. Nothing here is written by hand; the map family packages convert
// between these types and Go-friendly ones.
package bpfgen

// The C is compiled by hack/bpf-generate.sh (make generate), which runs
// bpf2go with each //sluice:bpf2go line's arguments in a fixed directory
// so the objects are the same bytes wherever the repository lives.
//
//go:generate bash ../../hack/bpf-generate.sh
//sluice:bpf2go -cc clang-19 -strip llvm-strip-19 -target amd64 -type endpoint_key -type endpoint_info -type metrics_key -type metrics_value -type sluice_reason -type sluice_direction -type lb4_key -type lb4_service -type lb4_backend -type lb4_reverse_nat -type lb4_affinity_key -type lb4_affinity_val -type ct4_tuple -type ct4_entry -type policy_key -type policy_entry -type policy_config -type policy_addr_key -type ipcache4_key -type ipcache4_value -type flow_event -type flow_verdict -type flow_config Lxc ../../bpf/lxc.c -- -I../../bpf -I/usr/include/x86_64-linux-gnu -mcpu=v3 -O2 -g -Wall -Werror
//sluice:bpf2go -cc clang-19 -strip llvm-strip-19 -target amd64 -type sluice_sock_reason -type sock4_rev_nat_key -type sock4_rev_nat_val -type connect_config -type connect_slot -type connect_slot_flag -type connect_action -type connect_dest_key -type process_connect_rule Sock ../../bpf/sock.c -- -I../../bpf -I/usr/include/x86_64-linux-gnu -mcpu=v3 -O2 -g -Wall -Werror
//sluice:bpf2go -cc clang-19 -strip llvm-strip-19 -target amd64 -type sluice_reason -type snat4_tuple -type snat4_entry Host ../../bpf/host.c -- -I../../bpf -I/usr/include/x86_64-linux-gnu -mcpu=v3 -O2 -g -Wall -Werror
//sluice:bpf2go -cc clang-19 -strip llvm-strip-19 -target amd64 Xdp ../../bpf/xdp.c -- -I../../bpf -I/usr/include/x86_64-linux-gnu -mcpu=v3 -O2 -g -Wall -Werror
//sluice:bpf2go -cc clang-19 -strip llvm-strip-19 -target amd64 -type process_key -type process_hdr -type process_exec -type process_exit -type process_fork -type process_connect -type process_event_type -type process_flag -type process_enforce -type exec_action -type exec_slot_flag -type exec_config_flag -type exec_path -type exec_prefix_key -type exec_slot -type exec_config -type class_config -type class_config_flag -type class_path -type class_prefix_key -type proc_class -type sys_source -type sys_value_flag -type sys_op -type sys_slot_flag -type sys_ns_kind -type sys_cap_set -type sys_value -type sys_arg -type sys_ns -type sys_cap -type sys_slot -type sys_nr -type sys_config -type sys_str_key -type sys_capture_flag -type sys_capture -type process_syscall Process ../../bpf/process.c -- -I../../bpf -I/usr/include/x86_64-linux-gnu -mcpu=v3 -O2 -g -Wall -Werror
