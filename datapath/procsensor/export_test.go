package procsensor

// RulePaths reads the path entries of the exec rule maps (exact paths,
// prefixes) and the string entries of the syscall rule maps from the
// kernel, for tests that check what the maps hold.
func RulePaths(s *Sensor) (exact, prefix, sysStr map[string]uint64, err error) {
	var fresh Sensor
	fresh.maps = s.maps
	if err := fresh.adoptExec(); err != nil {
		return nil, nil, nil, err
	}
	if err := fresh.adoptSys(); err != nil {
		return nil, nil, nil, err
	}
	sysStr = fresh.sys.str
	for k, v := range fresh.sys.postfix {
		sysStr["postfix:"+k] = v
	}
	return fresh.exec.exact, fresh.exec.prefix, sysStr, nil
}

// ClassPaths reads the path entries of the binary class maps from the
// kernel.
func ClassPaths(s *Sensor) (exact, prefix map[string]uint64, err error) {
	var fresh Sensor
	fresh.maps = s.maps
	if err := fresh.adoptClasses(); err != nil {
		return nil, nil, err
	}
	return fresh.class.exact, fresh.class.prefix, nil
}
