// Package examples holds the example configuration shipped with gong and
// the demo's echo upstream (tcpbin/).
package examples

import _ "embed"

// KongYML is kong.yml, the declarative configuration "gong config init"
// writes.
//
//go:embed kong.yml
var KongYML []byte
