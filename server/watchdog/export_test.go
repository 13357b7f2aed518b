package watchdog

// ListenTick is Listen scanning every tick: a test can have many scans race
// the connections' stamps while its limits stay long enough to ride out the
// stalls of a loaded machine.
var ListenTick = listen
