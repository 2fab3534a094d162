//go:build linux

package notify_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"os"
	"path/filepath"

	"github.com/fsnotifyd/fsnotifyd/notify"
)

// A directory's entries: created, then removed. One event per operation, named in the form
// the directory was added with.
func ExampleWatcher() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)

	w, err := notify.NewWatcher()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	if err := w.Add(dir); err != nil {
		log.Fatal(err)
	}

	os.WriteFile(filepath.Join(dir, "hello.txt"), nil, 0o644)
	ev := <-w.Events
	fmt.Println(ev.Op, filepath.Base(ev.Name))
	os.Remove(filepath.Join(dir, "hello.txt"))
	ev = <-w.Events
	fmt.Println(ev.Op, filepath.Base(ev.Name))
	// Output:
	// CREATE hello.txt
	// REMOVE hello.txt
}

// Following one file across editors' saves: a watch is on the file the path names when it is
// added, and an atomic save (write a temporary file, rename it over) replaces that file. So
// watch the directory and keep the events on the file's name: every save is a Create (or a
// Write, for an editor that writes in place) of that name.
func ExampleWatcher_file() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	config := filepath.Join(dir, "app.conf")
	os.WriteFile(config, []byte("v1"), 0o644)

	w, err := notify.NewWatcher()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	if err := w.Add(dir); err != nil {
		log.Fatal(err)
	}

	save := func(data string) { // as an editor saves atomically
		tmp := config + ".tmp"
		os.WriteFile(tmp, []byte(data), 0o644)
		os.Rename(tmp, config)
	}
	for _, data := range []string{"v2", "v3"} {
		save(data)
		for ev := range w.Events {
			if ev.Name == config && ev.Has(notify.Create|notify.Write) {
				b, _ := os.ReadFile(config)
				fmt.Printf("reload %s\n", b)
				break
			}
		}
	}
	// Output:
	// reload v2
	// reload v3
}

// A reader that may fall behind: Overflow says where events were lost, in order on Events
// (ErrEventOverflow on Errors is for fsnotify's readers). What the program keeps about the
// watched files must then be read again from the filesystem.
func ExampleWatcher_overflow() {
	w, err := notify.NewWatcher()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	if err := w.Add("/srv/data"); err != nil {
		log.Fatal(err)
	}
	for ev := range w.Events {
		if ev.Has(notify.Overflow) {
			log.Println("events were lost: rescanning /srv/data")
			continue
		}
		log.Println(ev)
	}
}

// Add's errors wrap the system's: a missing path is fs.ErrNotExist, a directory the process
// may not read fs.ErrPermission; they name the path.
func ExampleWatcher_Add() {
	w, err := notify.NewWatcher()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	err = w.Add("/nonexistent/dir")
	fmt.Println(errors.Is(err, fs.ErrNotExist))
	// Output:
	// true
}

// A recursive watch: everything below the directory, including what is created later
// ("/srv/data/..." is the same), with per-watch operations, and the process behind each
// event when the Watcher runs on fanotify (root).
func ExampleWatcher_AddWith() {
	w, err := notify.NewWatcher()
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	err = w.AddWith("/srv/data", notify.WithRecursive(),
		notify.WithOps(notify.Create|notify.CloseWrite|notify.Remove|notify.Rename))
	if err != nil {
		log.Fatal(err)
	}
	for ev := range w.Events {
		fmt.Println(ev.Op, ev.Name, ev.OldName, ev.Pid, ev.Comm)
	}
}

// Close may be called from the loop reading Events (or any goroutine, more than once): it
// returns once the Watcher's goroutine has, and Events and Errors are then closed.
func ExampleWatcher_Close() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	w, err := notify.NewWatcher()
	if err != nil {
		log.Fatal(err)
	}
	w.Add(dir)
	os.WriteFile(filepath.Join(dir, "stop"), nil, 0o644)
	for ev := range w.Events {
		if filepath.Base(ev.Name) == "stop" {
			w.Close()
		}
	}
	_, open := <-w.Errors
	fmt.Println("closed:", !open)
	// Output:
	// closed: true
}

// A Watcher bound to a context: Close when it ends, from any goroutine; the loop reading
// Events then ends, as Events is closed.
func ExampleWatcher_context() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := notify.NewWatcher()
	if err != nil {
		log.Fatal(err)
	}
	go func() { <-ctx.Done(); w.Close() }()
	w.Add(dir)

	os.WriteFile(filepath.Join(dir, "a"), nil, 0o644)
	for ev := range w.Events {
		fmt.Println(ev.Op, filepath.Base(ev.Name))
		cancel() // say, the program is shutting down
	}
	fmt.Println("stopped")
	// Output:
	// CREATE a
	// stopped
}
