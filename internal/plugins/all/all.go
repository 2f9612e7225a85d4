// Package all imports every compiled-in plugin; adding a plugin is one line
// here.
package all

import (
	_ "github.com/twistd-go/twistd/internal/plugins/chat"
	_ "github.com/twistd-go/twistd/internal/plugins/echo"
	_ "github.com/twistd-go/twistd/internal/plugins/fastpoetry"
	_ "github.com/twistd-go/twistd/internal/plugins/ftplite"
)
