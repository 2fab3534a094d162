package sys

import "strconv"

// Support is a probe's answer.
type Support int8

const (
	// Unknown: the probe could not tell (for example EPERM because the caller lacks
	// CAP_SYS_ADMIN, or ENOMEM, EMFILE). Not cached: the next call probes again.
	Unknown Support = iota
	// Supported: the kernel (or filesystem) accepted the real call. Cached.
	Supported
	// Unsupported: the kernel (or filesystem) rejected it as unknown or unsupported (EINVAL,
	// ENOSYS, EOPNOTSUPP). Cached.
	Unsupported
)

var supportNames = [...]string{"unknown", "supported", "unsupported"}

func (s Support) String() string {
	if int(s) >= 0 && int(s) < len(supportNames) {
		return supportNames[s]
	}
	return "support(" + strconv.Itoa(int(s)) + ")"
}

// Feature is a kernel capability that Probe can test.
//
// Without CAP_SYS_ADMIN the kernel refuses most groups with EPERM; probes then retry with
// FAN_REPORT_FID (allowed unprivileged since 5.13) where that still answers the question, and
// answer Unknown where it does not (permission classes, FAN_PRE_ACCESS, FAN_MARK_FILESYSTEM,
// FAN_REPORT_PIDFD and FAN_REPORT_FD_ERROR, which an unprivileged caller cannot use anyway).
type Feature uint8

const (
	// FeatureFanotify: fanotify_init works at all (CONFIG_FANOTIFY).
	FeatureFanotify Feature = iota + 1
	// FeatureInotify: inotify_init1 works (CONFIG_INOTIFY_USER).
	FeatureInotify
	// FeatureClassContent: FAN_CLASS_CONTENT groups with FAN_OPEN_PERM marks
	// (CONFIG_FANOTIFY_ACCESS_PERMISSIONS).
	FeatureClassContent
	// FeatureClassPreContent: FAN_CLASS_PRE_CONTENT groups with permission marks.
	FeatureClassPreContent
	// FeaturePreAccess: the kernel knows FAN_PRE_ACCESS (6.14). Whether a filesystem allows
	// it is ProbePreAccess's question.
	FeaturePreAccess
	// FeatureReportFID: FAN_REPORT_FID (5.1).
	FeatureReportFID
	// FeatureReportDFIDName: FAN_REPORT_DFID_NAME (5.9).
	FeatureReportDFIDName
	// FeatureReportTargetFID: FAN_REPORT_DFID_NAME_TARGET (5.17).
	FeatureReportTargetFID
	// FeatureRename: FAN_RENAME events with OLD/NEW_DFID_NAME records (5.17).
	FeatureRename
	// FeatureMarkFilesystem: FAN_MARK_FILESYSTEM (4.20).
	FeatureMarkFilesystem
	// FeatureMarkEvictable: FAN_MARK_EVICTABLE (5.19).
	FeatureMarkEvictable
	// FeatureMarkIgnore: FAN_MARK_IGNORE (6.0).
	FeatureMarkIgnore
	// FeatureReportPidfd: FAN_REPORT_PIDFD (5.15).
	FeatureReportPidfd
	// FeatureReportFDError: FAN_REPORT_FD_ERROR (6.13).
	FeatureReportFDError
	// FeatureReportMnt: FAN_REPORT_MNT mount events and FAN_MARK_MNTNS (6.15).
	FeatureReportMnt
	// FeatureUnprivileged: fanotify_init of a FID group without CAP_SYS_ADMIN (5.13).
	FeatureUnprivileged
	numFeatures
)

var featureNames = [numFeatures]string{
	FeatureFanotify:        "fanotify",
	FeatureInotify:         "inotify",
	FeatureClassContent:    "FAN_CLASS_CONTENT",
	FeatureClassPreContent: "FAN_CLASS_PRE_CONTENT",
	FeaturePreAccess:       "FAN_PRE_ACCESS",
	FeatureReportFID:       "FAN_REPORT_FID",
	FeatureReportDFIDName:  "FAN_REPORT_DFID_NAME",
	FeatureReportTargetFID: "FAN_REPORT_DFID_NAME_TARGET",
	FeatureRename:          "FAN_RENAME",
	FeatureMarkFilesystem:  "FAN_MARK_FILESYSTEM",
	FeatureMarkEvictable:   "FAN_MARK_EVICTABLE",
	FeatureMarkIgnore:      "FAN_MARK_IGNORE",
	FeatureReportPidfd:     "FAN_REPORT_PIDFD",
	FeatureReportFDError:   "FAN_REPORT_FD_ERROR",
	FeatureReportMnt:       "FAN_REPORT_MNT",
	FeatureUnprivileged:    "unprivileged fanotify",
}

// String returns the kernel name of the feature, e.g. "FAN_REPORT_PIDFD".
func (f Feature) String() string {
	if f > 0 && f < numFeatures {
		return featureNames[f]
	}
	return "feature(" + strconv.Itoa(int(f)) + ")"
}

// Features returns every feature Probe knows, in order.
func Features() []Feature {
	fs := make([]Feature, 0, numFeatures-1)
	for f := Feature(1); f < numFeatures; f++ {
		fs = append(fs, f)
	}
	return fs
}
