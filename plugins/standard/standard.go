// Package standard compiles in twistd's stock plugins: chat, echo,
// fastpoetry and ftp-lite. Import it for its side effect, beside
// package twistd:
//
//	import _ "github.com/twistd-go/twistd/plugins/standard"
package standard

import _ "github.com/twistd-go/twistd/internal/plugins/all"
