# Sourced by tools/*.sh and bench/*.sh: installs the Debian 12 packages doppel needs,
# skipping what is already there. Usage: doppel_install_deps [extra packages...]
# chromium (headless) renders the HTML report in its browser test; python3-jsonschema checks
# docs/report.schema.json against the golden report. libhttp-parser-dev (nodejs's
# http-parser) is the reference parser of the http_smuggling and http_response_smuggling
# fuzz targets (tests/fuzz/README.md); their regression runs are part of the normal suite.
# python3-websockets runs docs/examples/websocket_chat.py, the README's WebSocket client.
# libjemalloc-dev: the doppel binary allocates with jemalloc (tools/CMakeLists.txt).
doppel_install_deps() {
  local pkgs=(build-essential cmake pkg-config libboost1.81-dev librocksdb-dev libprotobuf-dev
              protobuf-compiler libzstd-dev libcli11-dev libgtest-dev libssl-dev zlib1g-dev
              libyaml-cpp-dev libbrotli-dev libre2-dev clang-format-14
              libhiredis-dev redis-server redis-tools
              chromium python3-jsonschema python3-websockets
              libnghttp2-dev nghttp2-client nghttp2-server
              libgrpc++-dev protobuf-compiler-grpc
              libsystemd-dev help2man libhttp-parser-dev libjemalloc-dev
              ca-certificates "$@")
  local missing=()
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "doppel: installing ${missing[*]}" >&2
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# The libFuzzer build (tools/test.sh --fuzz, bench/fuzz.sh): clang, its runtime libraries
# (libclang_rt.fuzzer and the ASan/UBSan runtimes; the clang package only recommends them),
# and llvm for llvm-symbolizer, which turns crash stacks into file:line.
DOPPEL_FUZZ_PACKAGES=(clang libclang-rt-14-dev llvm)

# doppel_configure_sanitize_build [CMAKE_ARGS...]: configures build-asan/, the build that
# tools/test.sh --sanitize and --fuzz and bench/fuzz.sh share (CMakeLists.txt,
# DOPPEL_SANITIZE): clang, so that one set of objects serves the sanitizer suite and the
# libFuzzer binaries.
doppel_configure_sanitize_build() {
  doppel_install_deps "${DOPPEL_FUZZ_PACKAGES[@]}"
  local args=(-DDOPPEL_SANITIZE=ON "$@")
  if [ -f build-asan/CMakeCache.txt ] &&
     ! grep -q '^CMAKE_CXX_COMPILER:.*clang' build-asan/CMakeCache.txt; then
    echo "doppel: build-asan/ was configured with gcc (an older tools/test.sh); configuring it again with clang" >&2
    rm -rf build-asan
  fi
  # The compiler only on the first configure: naming it again (even the same one by another
  # path) makes CMake drop the cache and rebuild everything.
  [ -f build-asan/CMakeCache.txt ] ||
    args+=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++)
  cmake -S . -B build-asan "${args[@]}" >/dev/null
}
