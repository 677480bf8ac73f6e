// doppel-echo: the demo upstream. See docs/doppel-echo.md.
//
//   doppel-echo --listen 127.0.0.1:0 [--threads N] [--variant v1|v2] [--noise]
//               [--latency 5ms] [--latency-jitter 2ms] [--seed N] [--port-file PATH]
//
// Prints "listening on HOST:PORT" on stdout once it accepts connections; SIGINT or SIGTERM
// stop it with exit code 0. Exit code 2: bad usage or the address could not be bound.
#include <pthread.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>

#include "base/log.h"
#include "base/units.h"
#include "tools/echo/echo_server.h"

namespace {

constexpr doppel::log::Component kEchoLog{"echo", "doppel-echo"};

constexpr int kExitError = 2;

// Splits "HOST:PORT" or "[V6HOST]:PORT".
bool SplitListen(const std::string& listen, std::string* host, uint16_t* port) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon + 1 == listen.size()) return false;
  *host = listen.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  if (host->empty()) return false;
  std::string p = listen.substr(colon + 1);
  if (p.find_first_not_of("0123456789") != std::string::npos || p.size() > 5) return false;
  unsigned long v = std::stoul(p);
  if (v > 65535) return false;
  *port = static_cast<uint16_t>(v);
  return true;
}

// Writes the port to `path` atomically (temp file + rename), so a reader polling for the
// file never sees it half-written.
bool WritePortFile(const std::string& path, uint16_t port) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << port << "\n";
    if (!out.flush()) return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  using doppel::echo::EchoOptions;
  CLI::App app{
      "doppel-echo: a deterministic JSON shop API used as the demo upstream; a GET that asks "
      "to upgrade to WebSocket (any path) gets an echo of each message"};
  std::string listen = "127.0.0.1:8080";
  std::string variant = "v1";
  std::string latency = "0", jitter = "0";
  std::string port_file;
  EchoOptions options;
  options.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  app.add_option("--listen", listen, "address to listen on, HOST:PORT (port 0: ephemeral)")
      ->capture_default_str();
  app.add_option("--threads", options.threads, "worker threads, one io_context each")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  app.add_option("--variant", variant, "v1, or v2 with three deliberate regressions")
      ->capture_default_str()
      ->check(CLI::IsMember({"v1", "v2"}));
  app.add_flag("--noise", options.noise,
               "add volatile fields (generated_at, request_id, nonce) and headers "
               "(X-Request-Id, Date) to every response");
  app.add_option("--latency", latency,
                 "delay before each response, e.g. 5ms, 250us, 1s (a bare number is seconds)")
      ->capture_default_str();
  app.add_option("--latency-jitter", jitter,
                 "the delay is uniform in latency ± jitter (clamped at 0)")
      ->capture_default_str();
  app.add_option("--seed", options.seed, "seed of the generated catalogue")->capture_default_str();
  app.add_option("--max-request-body", options.max_request_body,
                 "larger request bodies are answered 413")
      ->capture_default_str();
  app.add_flag("--stateful", options.stateful,
               "login, orders, a CSRF form and a cookie session whose answers depend on what "
               "this process handed out (docs/doppel-echo.md)");
  std::string jwt_key;
  app.add_option("--jwt-key", jwt_key,
                 "with --stateful: GET /jwt/me checks Bearer JWTs (HS256) against this secret "
                 "file (a trailing newline is not part of it): signature, exp, nbf");
  app.add_option("--port-file", port_file, "write the bound port to this file");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : kExitError;
  }

  if (!SplitListen(listen, &options.host, &options.port)) {
    doppel::log::Error(kEchoLog,
                       "--listen wants HOST:PORT, e.g. 127.0.0.1:0, not '" + listen + "'");
    return kExitError;
  }
  if (!jwt_key.empty()) {
    std::ifstream in(jwt_key, std::ios::binary);
    std::stringstream secret;
    secret << in.rdbuf();
    options.jwt_secret = secret.str();
    while (!options.jwt_secret.empty() &&
           (options.jwt_secret.back() == '\n' || options.jwt_secret.back() == '\r'))
      options.jwt_secret.pop_back();
    if (!in || options.jwt_secret.empty() || !options.stateful) {
      doppel::log::Error(kEchoLog,
                         "--jwt-key wants --stateful and a readable, non-empty secret file, not '" +
                             jwt_key + "'");
      return kExitError;
    }
  }
  options.variant = variant == "v2" ? doppel::echo::Variant::kV2 : doppel::echo::Variant::kV1;
  // A bare number is seconds, as for every duration flag of doppel (base/duration.h).
  auto lat = doppel::ParseDurationUs(latency);
  auto jit = doppel::ParseDurationUs(jitter);
  for (const auto* d : {&lat, &jit}) {
    if (!d->ok()) {
      doppel::log::Error(kEchoLog, "--latency/--latency-jitter: " + d->status().message());
      return kExitError;
    }
  }
  options.latency = std::chrono::microseconds(lat.value());
  options.latency_jitter = std::chrono::microseconds(jit.value());

  // Block the stop signals before any thread starts, so every thread inherits the mask and
  // sigwait() below is the only place they are delivered.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto server = doppel::echo::EchoServer::Start(options);
  if (!server.ok()) {
    doppel::log::Error(kEchoLog, server.status().message());
    return kExitError;
  }
  uint16_t port = (*server)->port();
  if (!port_file.empty() && !WritePortFile(port_file, port)) {
    doppel::log::Error(kEchoLog, "cannot write the port file " + port_file);
    return kExitError;
  }
  bool v6 = options.host.find(':') != std::string::npos;
  std::cout << "listening on " << (v6 ? "[" : "") << options.host << (v6 ? "]" : "") << ":" << port
            << std::endl;  // flushes: tests and scripts wait for this line

  int sig = 0;
  sigwait(&stop_signals, &sig);
  (*server)->Stop();
  (*server)->Wait();
  return 0;
}
