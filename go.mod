module github.com/twistd-go/twistd

go 1.26.8

require (
	github.com/spf13/cobra v1.10.2
	github.com/spf13/pflag v1.0.10
	golang.org/x/crypto v0.58.0
	gopkg.in/natefinch/lumberjack.v2 v2.2.1
)

require github.com/inconshreveable/mousetrap v1.1.0 // indirect
