// Package measure holds what tokend's benchmarks use to time an operation
// on a machine shared with other work: the process's CPU time per
// operation, and the mean of an operation's fastest runs. Benchmarks of
// several packages report their figures with it, so that they agree.
package measure
