package scenario

import "github.com/scaleout/scaleout/internal/yamlread"

// Error is one problem in a scenario file (or in a flag that overrides it),
// printed "file:line:col: field: message".
type Error = yamlread.Error

// Errors is every problem found in one file, in file order.
type Errors = yamlread.Errors
