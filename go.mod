module github.com/restpipe/restpipe

go 1.24

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/cenkalti/backoff/v4 v4.3.0
	github.com/coder/websocket v1.8.15
	github.com/hashicorp/yamux v0.1.2
	github.com/smallstep/truststore v0.13.0
	google.golang.org/protobuf v1.36.10
)

require howett.net/plist v1.0.0 // indirect
