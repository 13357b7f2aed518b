package main

// mutation is one deliberate defect: From, found exactly once in File,
// becomes To; the tests Run in Packages (with Args) must then fail.
type mutation struct {
	Name     string
	File     string
	From, To string
	Breaks   string // what the mutation breaks, for the table
	Run      string
	Args     []string
	Packages []string
}

// mutations is the list make mutants runs. A new rule comes with a new
// mutation here, so that a test is shown to notice when the rule breaks.
var mutations = []mutation{}
