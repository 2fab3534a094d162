// Package fsevent holds the plain value types that fsnotifyd's layers share and its users
// name: the event bits and their names (Mask), the kinds of watched objects, group classes
// and verdicts, the one event record every source produces (Event), the daemon's figures
// (Stats) and the protocol's error codes (Code).
//
// The engine uses these types as its own (engine.Mask is fsevent.Mask), the daemon's wire
// protocol encodes them, package client returns them, and the CLI prints them: an event is
// converted once, where it is read from the kernel, and never again on its way to a
// consumer, in this process or through the daemon.
//
// The package has no state, no goroutines and no locks, and imports only the standard
// library.
//
// # Names
//
// Every event bit has one name, the kernel's (fanotify's, without the FAN_ prefix), and each
// permission event the access it decides ("open", "access", "exec", "pre_access"). Mask.Names,
// Mask.String, MaskByName, Name, AccessName and MaskByAccess read the one table that holds
// them; the CLI's output formats (inotifywait's order, JSON's, fatrace's letters) only choose
// an order.
//
// # JSON
//
// An Event encodes (AppendJSON) as the object `fsnotifyd watch --json` prints
// (docs/trace-format.md), and a Decision (encoding/json) as a line of `fsnotifyd guard
// --audit`: the payloads of the fleet's records (docs/fleet.md).
package fsevent
