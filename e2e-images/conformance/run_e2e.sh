#!/usr/bin/env bash
# Run the conformance suite with ginkgo and leave the results where sonobuoy-style
# collectors look: $RESULTS_DIR/e2e.log, junit files, e2e.tar.gz, and a `done` file
# naming the tarball.  KUBE_TEST_REPO_LIST (mounted by the Job) points image pulls at the
# local registry.
set -o errexit -o nounset -o pipefail

mkdir -p "${RESULTS_DIR}"
shutdown() {
  # Collect whatever exists when asked to stop.
  cd "${RESULTS_DIR}" && tar -czf e2e.tar.gz ./* 2>/dev/null || true
  echo -n "${RESULTS_DIR}/e2e.tar.gz" > "${RESULTS_DIR}/done"
}
trap shutdown TERM

args=(--focus="${E2E_FOCUS}" --skip="${E2E_SKIP}" --noColor=true)
if [[ "${E2E_PARALLEL}" != "1" && "${E2E_PARALLEL}" != "false" ]]; then
  args+=(--nodes="${E2E_PARALLEL}")
fi
set -x
/usr/local/bin/ginkgo "${args[@]}" /usr/local/bin/e2e.test -- \
  --disable-log-dump --repo-root=/kubernetes --provider="${E2E_PROVIDER}" \
  --report-dir="${RESULTS_DIR}" --kubeconfig="${KUBECONFIG}" -v="${E2E_VERBOSITY}" \
  | tee "${RESULTS_DIR}/e2e.log" &
wait $! || true
set +x
shutdown
