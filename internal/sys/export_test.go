package sys

// Exported for the external tests (package sys_test).
var ResetProbes = resetProbes
