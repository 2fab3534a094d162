package sys

import (
	"errors"
	"fmt"
	"syscall"
	"testing"
)

func TestClassify(t *testing.T) {
	wrap := func(e error) error { return fmt.Errorf("fanotify_init(X): %w", e) }
	for _, tc := range []struct {
		err  error
		want Support
	}{
		{nil, Supported},
		{wrap(syscall.EINVAL), Unsupported},
		{wrap(syscall.ENOSYS), Unsupported},
		{wrap(syscall.EOPNOTSUPP), Unsupported},
		{wrap(syscall.EPERM), Unknown},
		{wrap(syscall.EACCES), Unknown},
		{wrap(syscall.ENOMEM), Unknown},
		{wrap(syscall.EMFILE), Unknown},
		{wrap(syscall.ENFILE), Unknown},
		{errors.New("other"), Unknown},
	} {
		if got := classify(tc.err); got != tc.want {
			t.Errorf("classify(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestFeatureError(t *testing.T) {
	cause := fmt.Errorf("fanotify_init(CLASS_NOTIF|REPORT_PIDFD): %w", syscall.EINVAL)
	for _, tc := range []struct {
		support      Support
		want         string
		notSupported bool
	}{
		{Unsupported, "FAN_REPORT_PIDFD: not supported by this kernel: fanotify_init(CLASS_NOTIF|REPORT_PIDFD): invalid argument", true},
		{Unknown, "FAN_REPORT_PIDFD: cannot tell whether supported: fanotify_init(CLASS_NOTIF|REPORT_PIDFD): invalid argument", false},
	} {
		err := featureError("FAN_REPORT_PIDFD", tc.support, "kernel", cause)
		if err.Error() != tc.want {
			t.Errorf("%v: %q, want %q", tc.support, err, tc.want)
		}
		if errors.Is(err, ErrNotSupported) != tc.notSupported {
			t.Errorf("%v: errors.Is(ErrNotSupported) = %v", tc.support, !tc.notSupported)
		}
		if !errors.Is(err, syscall.EINVAL) {
			t.Errorf("%v: errno lost", tc.support)
		}
		var fe *FeatureError
		if !errors.As(err, &fe) || fe.Feature != "FAN_REPORT_PIDFD" {
			t.Errorf("%v: not a *FeatureError for the feature: %#v", tc.support, err)
		}
	}
	if featureError("X", Supported, "kernel", nil) != nil {
		t.Error("Supported must give a nil error")
	}
}

func TestFeatureNames(t *testing.T) {
	seen := map[string]bool{}
	for _, f := range Features() {
		name := f.String()
		if name == "" || seen[name] || probeFuncs[f] == nil {
			t.Errorf("feature %d: name %q (dup %v), probe %v", f, name, seen[name], probeFuncs[f] != nil)
		}
		seen[name] = true
	}
	if len(seen) != int(numFeatures)-1 {
		t.Errorf("%d features named, want %d", len(seen), numFeatures-1)
	}
}
