module github.com/fsnotifyd/fsnotifyd

go 1.26.0

require (
	go.uber.org/goleak v1.3.0
	golang.org/x/sys v0.50.0
)

require pgregory.net/rapid v1.3.0 // indirect
