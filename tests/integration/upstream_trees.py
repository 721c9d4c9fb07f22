"""Small source trees laid out like the upstream ones the Go components build.

Upstream sources cannot be downloaded here, so tests create trees with the same module
paths, main packages and version variables that the components' ldflags stamp, and
build them through ``--source``: the code path a user with network runs on the pinned
upstream source.  Each program prints its version the way upstream's does.
"""

from __future__ import annotations

from pathlib import Path


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.lstrip("\n"))
    return root


_K8S_VERSION = """
package version

// Set through -ldflags -X by the build, as hack/lib/version.sh does.
var (
	gitMajor     string
	gitMinor     string
	gitVersion   = "v0.0.0-master+$Format:%h$"
	gitCommit    = "$Format:%H$"
	gitTreeState string
	buildDate    = "1970-01-01T00:00:00Z"
)

// Get returns the version the binary was stamped with.
func Get() string { return gitVersion }
"""

_K8S_MAIN = """
package main

import (
	"fmt"
	"os"

	"k8s.io/kubernetes/pkg/version"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "--version" {
		fmt.Println("Kubernetes " + version.Get())
		return
	}
	if len(os.Args) > 2 && os.Args[1] == "version" && os.Args[2] == "--client" {
		fmt.Println("Client Version: " + version.Get())
		return
	}
	fmt.Fprintln(os.Stderr, "only --version and version --client are implemented in this test tree")
	os.Exit(1)
}
"""

_HYPERKUBE = """
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/kubernetes/pkg/version"
)

var commands = map[string]bool{"kube-apiserver": true, "kube-controller-manager": true,
	"kube-scheduler": true, "kube-proxy": true, "kubelet": true, "kubectl": true}

// As upstream's hyperkube: the command is the name it was called as, or the first argument.
func main() {
	args := os.Args[1:]
	name := filepath.Base(os.Args[0])
	if name == "hyperkube" && len(args) > 0 {
		name, args = args[0], args[1:]
	}
	if !commands[name] {
		fmt.Fprintln(os.Stderr, "usage: hyperkube COMMAND")
		os.Exit(1)
	}
	if len(args) > 0 && args[0] == "--version" {
		fmt.Println("Kubernetes " + version.Get())
		return
	}
	fmt.Println(name, "would start here")
}
"""

# uint64 on amd64, uint32 on mips64le: the portability bug class of vendored cadvisor.
_STAT_DEV = """
package fsutil

import "syscall"

// DeviceOf returns the device number of a file.
func DeviceOf(st *syscall.Stat_t) uint64 { return st.Dev }
"""

STAT_DEV_PATCH = """--- a/pkg/fsutil/dev.go
+++ b/pkg/fsutil/dev.go
@@ -3,4 +3,4 @@
 import "syscall"
 
 // DeviceOf returns the device number of a file.
-func DeviceOf(st *syscall.Stat_t) uint64 { return st.Dev }
+func DeviceOf(st *syscall.Stat_t) uint64 { return uint64(st.Dev) }
"""


_TEST_WEBSERVER = """
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
)

var port = flag.Int("port", 80, "Port number.")

// Serves the container's filesystem, as upstream's test-webserver does.
func main() {
	flag.Parse()
	log.Fatal(http.ListenAndServe(fmt.Sprintf(":%d", *port), http.FileServer(http.Dir("/"))))
}
"""

_MOUNTTEST = """
package main

import (
	"flag"
	"fmt"
	"os"
	"syscall"
)

var (
	fsTypePath    = flag.String("fs_type", "", "Path to print the filesystem type of")
	fileModePath  = flag.String("file_mode", "", "Path to print the mode of")
	fileOwnerPath = flag.String("file_owner", "", "Path to print the owner UID of")
)

func main() {
	flag.Parse()
	if *fsTypePath != "" {
		var st syscall.Statfs_t
		if err := syscall.Statfs(*fsTypePath, &st); err != nil {
			fmt.Printf("error from statfs(%q): %v\\n", *fsTypePath, err)
			os.Exit(1)
		}
		fmt.Printf("mount type of %q: %v\\n", *fsTypePath, st.Type)
	}
	if *fileModePath != "" {
		info, err := os.Stat(*fileModePath)
		if err != nil {
			fmt.Printf("error from Stat(%q): %v\\n", *fileModePath, err)
			os.Exit(1)
		}
		fmt.Printf("mode of file %q: %v\\n", *fileModePath, info.Mode())
	}
	if *fileOwnerPath != "" {
		info, err := os.Stat(*fileOwnerPath)
		if err != nil {
			fmt.Printf("error from Stat(%q): %v\\n", *fileOwnerPath, err)
			os.Exit(1)
		}
		fmt.Printf("owner UID of %q: %v\\n", *fileOwnerPath, info.Sys().(*syscall.Stat_t).Uid)
	}
}
"""


_AGNHOST = """
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
)

// A few of agnhost's subcommands, with upstream's names and flags.
func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: agnhost COMMAND")
		os.Exit(1)
	}
	switch os.Args[1] {
	case "pause":
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGINT, syscall.SIGTERM)
		fmt.Println("Paused")
		<-c
	case "netexec":
		fs := flag.NewFlagSet("netexec", flag.ExitOnError)
		port := fs.Int("http-port", 8080, "HTTP listen port.")
		fs.Parse(os.Args[2:])
		http.HandleFunc("/hostname", func(w http.ResponseWriter, r *http.Request) {
			h, _ := os.Hostname()
			fmt.Fprint(w, h)
		})
		http.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, r.FormValue("msg"))
		})
		log.Fatal(http.ListenAndServe(fmt.Sprintf(":%d", *port), nil))
	default:
		fmt.Fprintln(os.Stderr, "unknown command", os.Args[1])
		os.Exit(1)
	}
}
"""

_NNP = """
package main

import (
	"fmt"
	"os"
)

func main() { fmt.Printf("Effective uid: %d\\n", os.Geteuid()) }
"""

_LISTENER = """
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
)

var port = flag.Int("port", 8080, "Port number.")

func main() {
	flag.Parse()
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "%s") })
	log.Fatal(http.ListenAndServe(fmt.Sprintf(":%%d", *port), nil))
}
"""

_CONSUME_CPU = """
package main

import (
	"flag"
	"fmt"
	"time"
)

var (
	millicores  = flag.Int("millicores", 0, "millicores to consume")
	durationSec = flag.Int("duration-sec", 0, "how long to consume")
)

func main() {
	flag.Parse()
	end := time.Now().Add(time.Duration(*durationSec) * time.Second)
	for time.Now().Before(end) {
		busy := time.Now().Add(time.Duration(*millicores) * time.Millisecond / 10)
		for time.Now().Before(busy) {
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Printf("consumed %d millicores for %ds\\n", *millicores, *durationSec)
}
"""


_SAMPLE_APISERVER = """
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "--help" {
		fmt.Println("Launch a wardle API server")
		return
	}
	fmt.Println("serving would start here")
}
"""

_E2E_TEST = """
package e2e

import (
	"flag"
	"fmt"
	"os"
	"testing"
)

var version = flag.Bool("version", false, "print the suite's version")

// TestMain stands in for the e2e suite: it answers --version and runs no specs.
func TestMain(m *testing.M) {
	flag.Parse()
	if *version {
		fmt.Println("e2e.test for Kubernetes conformance")
		os.Exit(0)
	}
	os.Exit(m.Run())
}
"""

_GINKGO = """
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "version" {
		fmt.Println("Ginkgo Version 1.8.0")
		return
	}
	fmt.Fprintln(os.Stderr, "usage: ginkgo [flags] TEST_BINARY -- [test flags]")
	os.Exit(1)
}
"""


_LOADER = """
package main

import (
	"flag"
	"fmt"
	"os"
)

var (
	poll = flag.Duration("poll", 0, "poll interval; 0 loads once")
	_    = flag.Bool("logtostderr", false, "log to standard error (glog)")
	_    = flag.Int("v", 0, "log verbosity (glog)")
)

// Loads the AppArmor profiles in the given directories (here: lists what it would load).
func main() {
	flag.Parse()
	for _, dir := range flag.Args() {
		entries, err := os.ReadDir(dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("would load %d profiles from %s\\n", len(entries), dir)
	}
}
"""


def kubernetes(root: Path, *, split: bool = False, stat_bug: bool = False) -> Path:
    """k8s.io/kubernetes: cmd/hyperkube (<= v1.16) or one cmd/<server> each (>= v1.17)."""
    files = {
        # The staging repositories are vendored as in the real tree (vendor/k8s.io/X -> staging).
        "go.mod": "module k8s.io/kubernetes\n\ngo 1.12\n\nrequire (\n\tgithub.com/onsi/ginkgo v1.8.0\n\tk8s.io/sample-apiserver v0.0.0\n)\n\n"
        "replace k8s.io/sample-apiserver => ./staging/src/k8s.io/sample-apiserver\n",
        "vendor/modules.txt": "# github.com/onsi/ginkgo v1.8.0\ngithub.com/onsi/ginkgo/ginkgo\n"
        "# k8s.io/sample-apiserver v0.0.0 => ./staging/src/k8s.io/sample-apiserver\nk8s.io/sample-apiserver\n",
        "vendor/k8s.io/sample-apiserver/main.go": _SAMPLE_APISERVER,
        "staging/src/k8s.io/sample-apiserver/go.mod": "module k8s.io/sample-apiserver\n\ngo 1.12\n",
        "staging/src/k8s.io/sample-apiserver/main.go": _SAMPLE_APISERVER,
        "test/e2e/e2e_test.go": _E2E_TEST,
        "vendor/github.com/onsi/ginkgo/ginkgo/main.go": _GINKGO,
        "cmd/kubectl/main.go": _K8S_MAIN,
        "test/images/apparmor-loader/loader.go": _LOADER,
        "pkg/version/base.go": _K8S_VERSION,
        "test/images/test-webserver/test-webserver.go": _TEST_WEBSERVER,
        "test/images/mounttest/mt.go": _MOUNTTEST,
        "test/images/agnhost/agnhost.go": _AGNHOST,
        "test/images/nonewprivs/nnp.go": _NNP,
        "test/images/resource-consumer/resource_consumer.go": _LISTENER % "resource-consumer",
        "test/images/resource-consumer/consume-cpu/consume_cpu.go": _CONSUME_CPU,
        "test/images/resource-consumer-controller/controller.go": _LISTENER % "resource-consumer-controller",
    }
    if split:
        for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "kubelet", "kubectl"):
            files[f"cmd/{name}/main.go"] = _K8S_MAIN
    else:
        files["cmd/hyperkube/main.go"] = _HYPERKUBE
    if stat_bug:
        files["pkg/fsutil/dev.go"] = _STAT_DEV
        files["cmd/hyperkube/main.go"] = _HYPERKUBE.replace(
            '"k8s.io/kubernetes/pkg/version"', '"k8s.io/kubernetes/pkg/fsutil"\n\t"k8s.io/kubernetes/pkg/version"'
        ).replace("func main() {", "var _ = fsutil.DeviceOf\n\nfunc main() {")
    return _write(root, files)


def coredns(root: Path) -> Path:
    return _write(
        root,
        {
            "go.mod": "module github.com/coredns/coredns\n\ngo 1.12\n",
            "coremain/version.go": """
package coremain

// Various CoreDNS constants.
const (
	CoreName    = "CoreDNS"
	CoreVersion = "1.6.2"
)

// GitCommit is set by the build.
var GitCommit string
""",
            "coredns.go": """
package main

import (
	"flag"
	"fmt"
	"runtime"

	"github.com/coredns/coredns/coremain"
)

func main() {
	version := flag.Bool("version", false, "Show version")
	flag.Parse()
	if *version {
		fmt.Printf("%s-%s\\n%s/%s, %s, %s\\n", coremain.CoreName, coremain.CoreVersion,
			runtime.GOOS, runtime.GOARCH, runtime.Version(), coremain.GitCommit)
		return
	}
	fmt.Println("serving would start here")
}
""",
        },
    )


def _version_main(flag: str, module_var: str = "VERSION") -> str:
    return f"""
package main

import (
	"fmt"
	"os"
)

// {module_var} is set by the build.
var {module_var} string

func main() {{
	if len(os.Args) > 1 && os.Args[1] == "{flag}" {{
		fmt.Println({module_var})
		return
	}}
	fmt.Println("running")
}}
"""


def calico(root: Path) -> dict[str, Path]:
    """The four calico repositories, one tree each."""
    node = _write(
        root / "node",
        {
            "go.mod": "module github.com/projectcalico/node\n\ngo 1.12\n",
            "pkg/startup/startup.go": "package startup\n\n// VERSION is set by the build.\nvar VERSION string\n",
            "buildinfo/buildinfo.go": "package buildinfo\n\n// Set by the build.\nvar (\n\tGitVersion  string\n\tGitRevision string\n\tBuildDate   string\n)\n",
            "cmd/calico-node/main.go": """
package main

import (
	"fmt"
	"os"

	"github.com/projectcalico/node/pkg/startup"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		fmt.Println(startup.VERSION)
		return
	}
	fmt.Println("running")
}
""",
        },
    )
    cni = _write(
        root / "cni",
        {
            "go.mod": "module github.com/projectcalico/cni-plugin\n\ngo 1.12\n",
            "cmd/calico/main.go": _version_main("-v"),
            "cmd/calico-ipam/main.go": _version_main("-v"),
        },
    )
    controllers = _write(
        root / "kube-controllers",
        {
            "go.mod": "module github.com/projectcalico/kube-controllers\n\ngo 1.12\n",
            "cmd/kube-controllers/main.go": _version_main("-version"),
        },
    )
    ctl = _write(
        root / "calicoctl",
        {
            "go.mod": "module github.com/projectcalico/calicoctl\n\ngo 1.12\n",
            "calicoctl/commands/version.go": "package commands\n\n// Set by the build.\nvar (\n\tVERSION      string\n\tGIT_REVISION string\n\tBUILD_DATE   string\n)\n",
            "calicoctl/calicoctl.go": """
package main

import (
	"fmt"
	"os"

	"github.com/projectcalico/calicoctl/calicoctl/commands"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "version" {
		fmt.Printf("Client Version:    %s\\nGit commit:        %s\\n", commands.VERSION, commands.GIT_REVISION)
		return
	}
	fmt.Println("usage: calicoctl version")
	os.Exit(1)
}
""",
        },
    )
    return {"node": node, "cni": cni, "kube-controllers": controllers, "calicoctl": ctl}
