//go:build linux

package main

// fleetSubcommands are "fsnotifyd fleet SUBCOMMAND", each in a file of its own (fleet_tail.go)
// that registers itself in an init function.
var fleetSubcommands = map[string]subcommand{}

func registerFleetSubcommand(c subcommand) { fleetSubcommands[c.name] = c }

// runFleet dispatches "fsnotifyd fleet SUBCOMMAND [ARGS]".
func runFleet(args []string) int {
	return dispatch("fleet", "set up the fleet stream, read the events and decisions of every host (NATS JetStream)", fleetSubcommands, args)
}
