// Security checks on the doppel binary: the admin endpoint stays on loopback unless asked,
// secrets stay out of output, logs and the store, request and response content reaches the
// logs only with --log-bodies, and TLS certificates are verified by default (record and
// replay).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <sstream>
#include <thread>

#include "storage/store.h"
#include "tests/base/temp_dir.h"
#include "tests/integration/hardening_util.h"
#include "tests/integration/store_dir_test.h"
#include "tests/net/test_tls_upstream.h"
#include "tests/net/test_upstream.h"
#include "tests/storage/test_envelopes.h"

namespace doppel::testing {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;

class SecurityTest : public StoreDirTest {
 protected:
  void SetUp() override {
    StoreDirTest::SetUp();
    store_ = dir_ + "/nested/store";
  }

  // A session of `n` GETs of /p/I recorded with 200 `body(I)`, written straight to the store.
  void WriteSession(const std::string& name, int n,
                    const std::function<std::string(int)>& request_body,
                    const std::function<std::string(int)>& response_body) {
    std::vector<v1::Envelope> batch;
    for (int i = 0; i < n; ++i) {
      v1::Envelope e;
      e.set_arrival_us(1'000'000 + i * 1000);
      e.set_seq(i);
      auto* r = e.mutable_request();
      r->set_method("GET");
      r->set_target("/p/" + std::to_string(i) + "?token=QUERYSECRET");
      r->set_version(11);
      r->set_body(request_body(i));
      auto* res = e.mutable_response();
      res->set_status(200);
      auto* h = res->add_headers();
      h->set_name("Content-Type");
      h->set_value("text/plain");
      res->set_body(response_body(i));
      batch.push_back(e);
    }
    const Status written = storage::testing::WriteSession(store_, name, batch);
    ASSERT_TRUE(written.ok()) << written.ToString();
  }

  int Doppel(std::vector<std::string> args, std::unique_ptr<ChildProcess>* out) {
    std::vector<std::string> cmd = {DoppelBinary(), "--store", store_};
    cmd.insert(cmd.end(), args.begin(), args.end());
    *out = std::make_unique<ChildProcess>(cmd);
    return (*out)->Wait(60000);
  }
};

TEST_F(SecurityTest, AdminOnANonLoopbackAddressNeedsAllowRemote) {
  TestUpstream up;
  for (const char* admin : {"0.0.0.0:0", "[::]:0"}) {
    ChildProcess refused({DoppelBinary(), "--store", store_, "record", "--listen", "127.0.0.1:0",
                          "--upstream", up.url(), "--admin", admin});
    EXPECT_EQ(refused.Wait(20000), 2) << admin;
    EXPECT_NE(refused.all_stderr().find("not a loopback address"), std::string::npos)
        << refused.all_stderr();
    EXPECT_NE(refused.all_stderr().find("--admin-allow-remote"), std::string::npos)
        << refused.all_stderr();
    EXPECT_EQ(refused.all_stdout().find("listening on"), std::string::npos);
  }
  ChildProcess allowed({DoppelBinary(), "--store", store_, "record", "--listen", "127.0.0.1:0",
                        "--upstream", up.url(), "--admin", "0.0.0.0:0", "--admin-allow-remote",
                        "--session", "remote-admin"});
  ASSERT_FALSE(allowed.WaitForLine("listening on ").empty()) << allowed.all_stderr();
  const std::string admin = allowed.WaitForLine("admin on ");
  EXPECT_EQ(admin.rfind("0.0.0.0:", 0), 0u) << admin;
  EXPECT_EQ(Fetch(static_cast<uint16_t>(PortOf(admin)), "GET", "/healthz").body(), "ok\n");
  allowed.Signal(SIGTERM);
  EXPECT_EQ(allowed.Wait(20000), 0) << allowed.all_stderr();
  // Loopback addresses need nothing.
  RecordProcess loopback(store_, up.url(), {"--session", "loopback-admin"});
  EXPECT_TRUE(loopback.started()) << loopback.child().all_stderr();
}

// Secrets in requests and responses (Authorization, Cookie, Set-Cookie) reach neither the
// output, nor the logs, nor the store (which keeps their HMAC), also on error paths and also
// with --log-bodies; bodies reach the log only with --log-bodies.
TEST_F(SecurityTest, SecretsStayOutOfOutputLogsAndStoreAndBodiesNeedLogBodies) {
  TestUpstream up;
  auto drive = [&](RecordProcess& rec) {
    const std::vector<std::pair<std::string, std::string>> secrets = {
        {"Authorization", "Bearer SECRET123"}, {"Cookie", "sid=COOKIESECRET"}};
    EXPECT_EQ(Fetch(rec.port(), "GET", "/hop", "", secrets).result_int(), 200u);  // Set-Cookie
    EXPECT_EQ(Fetch(rec.port(), "POST", "/orders", "BODYMARKER-ok", secrets).result_int(), 200u);
    // The primary resets: 502 for a POST with a body.
    EXPECT_EQ(Fetch(rec.port(), "POST", "/reset", "BODYMARKER-502", secrets).result_int(), 502u);
    // A malformed body after the secret header: 400.
    TestClient c(rec.port());
    EXPECT_TRUE(
        c.Write("POST /bad HTTP/1.1\r\nHost: shop.test\r\nAuthorization: Bearer SECRET123\r\n"
                "Cookie: sid=COOKIESECRET\r\nTransfer-Encoding: chunked\r\n\r\n"
                "e\r\nBODYMARKER-400\r\nzz\r\n"));
    EXPECT_EQ(c.ReadAll(3000).rfind("HTTP/1.1 400", 0), 0u);
    rec.child().Signal(SIGTERM);
    EXPECT_EQ(rec.child().Wait(20000), 0) << rec.child().all_stderr();
    return rec.child().all_stdout() + rec.child().all_stderr();
  };

  RecordProcess quiet(store_, up.url(), {"--session", "quiet"});
  ASSERT_TRUE(quiet.started()) << quiet.child().all_stderr();
  const std::string quiet_out = drive(quiet);
  RecordProcess verbose(store_, up.url(), {"--session", "verbose", "--log-bodies"});
  ASSERT_TRUE(verbose.started()) << verbose.child().all_stderr();
  const std::string verbose_out = drive(verbose);

  for (const std::string* out : {&quiet_out, &verbose_out}) {
    for (const char* secret : {"SECRET123", "COOKIESECRET", "upstream-secret"}) {
      EXPECT_EQ(out->find(secret), std::string::npos) << secret << " in:\n" << *out;
    }
  }
  EXPECT_EQ(quiet_out.find("BODYMARKER"), std::string::npos) << quiet_out;
  // With --log-bodies: each request the proxy answered itself, its body, and the secret
  // header as its hash.
  for (const char* line :
       {"doppel record: 502 upstream_reset", "BODYMARKER-502", "doppel record: 400 bad_request",
        "BODYMARKER-400", "Authorization: hmac:"}) {
    EXPECT_NE(verbose_out.find(line), std::string::npos) << line << " not in:\n" << verbose_out;
  }
  EXPECT_EQ(verbose_out.find("BODYMARKER-ok"), std::string::npos);  // answered by the primary

  // The store: created private, the key 0600, the secrets only as HMACs, in no file.
  struct stat st;
  ASSERT_EQ(::stat(store_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(::stat((store_ + "/redaction.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  {
    storage::StoreOptions o;
    o.read_only = true;
    std::unique_ptr<storage::Store> store;
    ASSERT_TRUE(storage::Store::Open(o, store_, &store).ok());
    int hashed = 0;
    for (const char* session : {"quiet", "verbose"}) {
      auto it = store->Scan(session);
      ASSERT_TRUE(it.ok());
      for (auto& i = it.value(); i->Valid(); i->Next()) {
        for (const auto* headers :
             {&i->envelope().request().headers(), &i->envelope().response().headers()}) {
          for (const auto& h : *headers) {
            if (boost::beast::iequals(h.name(), "Authorization") ||
                boost::beast::iequals(h.name(), "Cookie") ||
                boost::beast::iequals(h.name(), "Set-Cookie")) {
              EXPECT_EQ(h.value().rfind("hmac:", 0), 0u) << h.name() << ": " << h.value();
              ++hashed;
            }
          }
        }
      }
    }
    EXPECT_GE(hashed, 2 * 7);  // 3 requests x 2 headers + Set-Cookie, per session
  }
  for (const auto& f : std::filesystem::recursive_directory_iterator(store_)) {
    if (!f.is_regular_file()) continue;
    const std::string bytes = ReadFile(f.path());
    for (const char* secret : {"SECRET123", "COOKIESECRET", "upstream-secret"}) {
      EXPECT_EQ(bytes.find(secret), std::string::npos) << secret << " in " << f.path();
    }
  }

  // Exports hold recorded traffic too: readable by their owner only, whatever the umask.
  for (const char* name : {"out.dpl", "out.har", "out.jsonl"}) {
    const std::string file = dir_ + "/" + name;
    std::unique_ptr<ChildProcess> exporter;
    ASSERT_EQ(Doppel({"export", "verbose", file}, &exporter), 0) << exporter->all_stderr();
    ASSERT_EQ(::stat(file.c_str(), &st), 0) << file;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << file;
  }

  // Replaying the session: the hashes are not sent, and nothing secret is printed.
  std::unique_ptr<ChildProcess> replay;
  TestUpstream target;
  EXPECT_NE(Doppel({"replay", "--session", "verbose", "--target", target.url(), "--max",
                    "--allow-unsafe-methods", "--no-progress", "--log-bodies"},
                   &replay),
            2)
      << replay->all_stderr();
  const std::string replay_out = replay->all_stdout() + replay->all_stderr();
  for (const char* secret : {"SECRET123", "COOKIESECRET", "upstream-secret", "hmac:"}) {
    EXPECT_EQ(replay_out.find(secret), std::string::npos) << secret << " in:\n" << replay_out;
  }
  for (const auto& r : target.requests()) {
    EXPECT_FALSE(r.HasHeader("Authorization"));
    EXPECT_FALSE(r.HasHeader("Cookie"));
  }
}

// The terminal report shows differing values (here a response body) only with --log-bodies;
// the JSON report keeps them either way.
TEST_F(SecurityTest, ReplayShowsDifferingValuesOnlyWithLogBodies) {
  // The target echoes the request body; the recording says the answer was different.
  WriteSession(
      "s", 40, [](int i) { return "RESPMARKER-new-" + std::to_string(i); },
      [](int i) { return "RESPMARKER-old-" + std::to_string(i); });
  TestUpstream target;
  const std::string json_path = dir_ + "/report.json";
  std::unique_ptr<ChildProcess> p;
  EXPECT_EQ(Doppel({"replay", "--session", "s", "--target", target.url(), "--max", "--no-progress",
                    "--report-json", json_path},
                   &p),
            1)
      << p->all_stderr();
  const std::string hidden = p->all_stdout() + p->all_stderr();
  EXPECT_NE(hidden.find("values not shown"), std::string::npos) << hidden;
  EXPECT_EQ(hidden.find("RESPMARKER"), std::string::npos) << hidden;
  EXPECT_EQ(hidden.find("QUERYSECRET"), std::string::npos) << hidden;
  EXPECT_NE(ReadFile(json_path).find("RESPMARKER"), std::string::npos);

  EXPECT_EQ(Doppel({"replay", "--session", "s", "--target", target.url(), "--max", "--no-progress",
                    "--log-bodies"},
                   &p),
            1)
      << p->all_stderr();
  EXPECT_NE(p->all_stdout().find("RESPMARKER-old"), std::string::npos) << p->all_stdout();

  // `doppel report` re-renders the same way.
  EXPECT_EQ(Doppel({"report", "--run", "1"}, &p), 1) << p->all_stderr();
  EXPECT_EQ(p->all_stdout().find("RESPMARKER"), std::string::npos) << p->all_stdout();
  EXPECT_EQ(Doppel({"report", "--run", "1", "--log-bodies"}, &p), 1) << p->all_stderr();
  EXPECT_NE(p->all_stdout().find("RESPMARKER-old"), std::string::npos) << p->all_stdout();
}

TEST_F(SecurityTest, TlsIsVerifiedByDefaultForRecordAndReplay) {
  TestTlsUpstream up({.keep_alive = true});
  const std::string cert = dir_ + "/cert.pem";
  std::ofstream(cert) << up.cert_pem();

  // doppel record
  struct RecordCase {
    std::vector<std::string> flags;
    unsigned status;
    const char* body;
  } record_cases[] = {
      {{}, 502, "certificate verify failed"},
      {{"--upstream-insecure"}, 200, "tls ok /r"},
      {{"--upstream-ca", cert}, 200, "tls ok /r"},
  };
  int n = 0;
  for (const RecordCase& c : record_cases) {
    std::vector<std::string> flags = c.flags;
    flags.insert(flags.end(), {"--session", "tls-" + std::to_string(n++)});
    RecordProcess rec(store_, up.url(), flags);
    ASSERT_TRUE(rec.started()) << rec.child().all_stderr();
    auto res = Fetch(rec.port(), "GET", "/r");
    EXPECT_EQ(res.result_int(), c.status) << res.body();
    EXPECT_NE(res.body().find(c.body), std::string::npos) << res.body();
    if (c.status == 502) {
      EXPECT_NE(res.body().find("TLS handshake"), std::string::npos) << res.body();
      EXPECT_EQ(rec.Metric("doppel_proxy_errors_total{reason=\"upstream_connect\"}"), 1);
    }
    rec.child().Signal(SIGTERM);
    EXPECT_EQ(rec.child().Wait(20000), 0);
  }

  // doppel record --mirror (https mirrors, fire-and-forget: watched from the upstream side)
  TestUpstream primary;
  struct MirrorCase {
    std::string options;
    bool reaches;
  } mirror_cases[] = {{"", false}, {",insecure", true}, {",ca=" + cert, true}};
  for (const MirrorCase& c : mirror_cases) {
    const int before = static_cast<int>(up.answered().size());
    RecordProcess rec(store_, primary.url(),
                      {"--session", "tls-" + std::to_string(n++), "--mirror",
                       up.url() + c.options + ",name=tls"});
    ASSERT_TRUE(rec.started()) << rec.child().all_stderr();
    EXPECT_EQ(Fetch(rec.port(), "GET", "/m").result_int(), 200u);
    if (c.reaches) {
      EXPECT_TRUE(Eventually([&] { return static_cast<int>(up.answered().size()) > before; }))
          << c.options;
    } else {
      // The copy was sent and is over (the handshake refused the certificate): from then on
      // it cannot reach the mirror. (In flight is counted before sent, so sent 1 with none
      // in flight means finished.)
      EXPECT_TRUE(Eventually([&] {
        return rec.Metric("doppel_mirror_sent_total{mirror=\"tls\"}") == 1 &&
               rec.Metric("doppel_mirror_inflight{mirror=\"tls\"}") == 0;
      })) << rec.Admin("/metrics");
      EXPECT_EQ(rec.Metric("doppel_mirror_succeeded_total{mirror=\"tls\"}"), 0);
      EXPECT_EQ(static_cast<int>(up.answered().size()), before)
          << "an unverified mirror got a copy";
    }
    rec.child().Signal(SIGTERM);
    EXPECT_EQ(rec.child().Wait(20000), 0) << rec.child().all_stderr();
  }

  // doppel replay (https targets)
  WriteSession(
      "tls", 5, [](int) { return std::string(); },
      [](int i) { return "tls ok /p/" + std::to_string(i) + "?token=QUERYSECRET"; });
  struct ReplayCase {
    std::vector<std::string> flags;
    int64_t errors;
  } replay_cases[] = {{{}, 5}, {{"--target-insecure"}, 0}, {{"--target-ca", cert}, 0}};
  for (const ReplayCase& c : replay_cases) {
    const std::string report = dir_ + "/tls-report.json";
    std::vector<std::string> args = {"replay",        "--session",     "tls",
                                     "--target",      up.url(),        "--max",
                                     "--no-progress", "--report-json", report};
    args.insert(args.end(), c.flags.begin(), c.flags.end());
    std::unique_ptr<ChildProcess> p;
    const int code = Doppel(args, &p);
    EXPECT_EQ(code, c.errors ? 1 : 0) << p->all_stderr() << p->all_stdout();
    auto rep = json::parse(ReadFile(report));
    const auto& t = rep.at("targets").as_array().at(0);
    EXPECT_EQ(t.at("errors").to_number<int64_t>(), c.errors) << json::serialize(t);
    if (c.errors) {
      EXPECT_NE(json::serialize(t).find("connect"), std::string::npos) << json::serialize(t);
    }
  }
}

}  // namespace
}  // namespace doppel::testing
