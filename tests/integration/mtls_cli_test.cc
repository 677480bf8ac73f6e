// mTLS with the real doppel binary and a CA and certificates made by openssl in each test
// (test_pki.h): client certificates toward a primary, a mirror and a replay target that
// require one; --tls-client-ca on the listener (HTTP/1.1 and HTTP/2 over TLS) refusing clients
// without a valid certificate and recording the verified subject, which match rules select on;
// certificates and keys doppel cannot use refused at start with a message naming them.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/child_process.h"
#include "tests/integration/hardening_util.h"
#include "tests/integration/store_dir_test.h"
#include "tests/integration/test_pki.h"
#include "tests/net/test_tls_upstream.h"
#include "tests/net/test_upstream.h"
#include "tests/storage/test_envelopes.h"

namespace doppel::testing {
namespace {

namespace json = boost::json;

struct ProgramRun {
  int code = -1;
  std::string out, err;
};

ProgramRun RunProgram(std::vector<std::string> args) {
  ChildProcess p(std::move(args));
  ProgramRun r;
  r.code = p.Wait(60000);
  r.out = p.all_stdout();
  r.err = p.all_stderr();
  return r;
}

class MtlsCliTest : public StoreDirTest {
 protected:
  void SetUp() override {
    StoreDirTest::SetUp();
    pki_ = std::make_unique<TestPki>(dir_);
    ASSERT_EQ(pki_->error(), "");
  }

  ProgramRun Doppel(std::vector<std::string> args) {
    std::vector<std::string> cmd = {DoppelBinary(), "--store", store_};
    cmd.insert(cmd.end(), args.begin(), args.end());
    return RunProgram(cmd);
  }

  TestCertFiles Issue(const std::string& name, const std::string& subject, int days = 2) {
    TestCertFiles f = pki_->Issue(name, subject, days);
    EXPECT_EQ(pki_->error(), "");
    return f;
  }

  // A TestTlsUpstream's self-signed certificate as a CA file for --upstream-ca and the like.
  std::string CaFileOf(const TestTlsUpstream& server, const std::string& name) {
    const std::string path = dir_ + "/" + name + "-ca.pem";
    std::ofstream(path) << server.cert_pem();
    return path;
  }

  // The envelopes of `session` as `doppel cat` prints them.
  std::vector<json::object> Envelopes(const std::string& session) {
    ProgramRun cat = Doppel({"cat", session});
    EXPECT_EQ(cat.code, 0) << cat.err;
    std::vector<json::object> out;
    std::istringstream in(cat.out);
    for (std::string line; std::getline(in, line);) out.push_back(json::parse(line).as_object());
    return out;
  }

  // Session `name`: `n` GETs of /r/I, recorded as 200 "tls ok /r/I".
  void WriteGets(const std::string& name, size_t n) {
    std::vector<v1::Envelope> batch(n);
    for (size_t i = 0; i < batch.size(); ++i) {
      batch[i].set_arrival_us(1'000'000 + i);
      batch[i].set_seq(static_cast<uint32_t>(i));
      batch[i].mutable_request()->set_method("GET");
      batch[i].mutable_request()->set_target("/r/" + std::to_string(i));
      batch[i].mutable_request()->set_version(11);
      batch[i].mutable_response()->set_status(200);
      batch[i].mutable_response()->set_body("tls ok /r/" + std::to_string(i));
    }
    const Status s = storage::testing::WriteSession(store_, name, batch);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  std::unique_ptr<TestPki> pki_;
};

TEST_F(MtlsCliTest, APrimaryThatRequiresAClientCertificateGetsOne) {
  TestTlsUpstreamOptions options;
  options.client_ca_file = pki_->ca();
  TestTlsUpstream primary(options);
  const std::string primary_ca = CaFileOf(primary, "primary");
  const TestCertFiles client = Issue("recorder", "/O=Example/CN=doppel-recorder");
  {
    RecordProcess rec(store_, primary.url(), {"--session", "no-cert", "--upstream-ca", primary_ca});
    ASSERT_TRUE(rec.started()) << rec.child().all_stderr();
    EXPECT_EQ(Fetch(rec.port(), "GET", "/without").result_int(), 502);
    rec.child().Signal(SIGTERM);
    EXPECT_EQ(rec.child().Wait(30000), 0) << rec.child().all_stderr();
  }
  EXPECT_TRUE(primary.answered().empty());
  {
    RecordProcess rec(store_, primary.url(),
                      {"--session", "cert", "--upstream-ca", primary_ca, "--upstream-cert",
                       client.cert, "--upstream-key", client.key});
    ASSERT_TRUE(rec.started()) << rec.child().all_stderr();
    const auto res = Fetch(rec.port(), "GET", "/with");
    EXPECT_EQ(res.result_int(), 200);
    EXPECT_EQ(res.body(), "tls ok /with");
    rec.child().Signal(SIGTERM);
    EXPECT_EQ(rec.child().Wait(30000), 0) << rec.child().all_stderr();
    // The key's contents appear nowhere.
    const std::string key_pem = [&] {
      std::ifstream in(client.key);
      std::stringstream ss;
      ss << in.rdbuf();
      return ss.str();
    }();
    const std::string body = key_pem.substr(key_pem.find('\n') + 1, 40);
    EXPECT_EQ(rec.child().all_stderr().find(body), std::string::npos);
    EXPECT_EQ(rec.child().all_stdout().find(body), std::string::npos);
  }
  EXPECT_EQ(primary.answered(), std::vector<std::string>{"/with"});
  ASSERT_FALSE(primary.client_subjects().empty());
  EXPECT_EQ(primary.client_subjects()[0], "CN=doppel-recorder,O=Example");
}

TEST_F(MtlsCliTest, AMirrorThatRequiresAClientCertificateGetsOne) {
  TestUpstream primary;
  TestTlsUpstreamOptions options;
  options.client_ca_file = pki_->ca();
  TestTlsUpstream mirror(options);
  const std::string mirror_ca = CaFileOf(mirror, "mirror");
  const TestCertFiles client = Issue("mirror-client", "/O=Example/CN=doppel-mirror");
  RecordProcess rec(store_, primary.url(),
                    {"--session", "mirrored", "--mirror",
                     mirror.url() + ",name=with-cert,ca=" + mirror_ca + ",cert=" + client.cert +
                         ",key=" + client.key,
                     "--mirror", mirror.url() + ",name=without-cert,ca=" + mirror_ca});
  ASSERT_TRUE(rec.started()) << rec.child().all_stderr();
  EXPECT_EQ(Fetch(rec.port(), "GET", "/copied").result_int(), 200);
  EXPECT_TRUE(Eventually(
      [&] { return rec.Metric("doppel_mirror_succeeded_total{mirror=\"with-cert\"}") == 1; },
      20000));
  auto failed = [&] {
    double sum = 0;
    for (const char* reason : {"connect", "timeout", "reset", "5xx", "bad_response"}) {
      sum += std::max(0.0, rec.Metric(std::string("doppel_mirror_failed_total{mirror=\"without-"
                                                  "cert\",reason=\"") +
                                      reason + "\"}"));
    }
    return sum;
  };
  EXPECT_TRUE(Eventually([&] { return failed() == 1; }, 20000)) << failed();
  EXPECT_EQ(rec.Metric("doppel_mirror_succeeded_total{mirror=\"without-cert\"}"), 0);
  rec.child().Signal(SIGTERM);
  EXPECT_EQ(rec.child().Wait(30000), 0) << rec.child().all_stderr();
  EXPECT_EQ(mirror.answered(), std::vector<std::string>{"/copied"});
  EXPECT_EQ(mirror.client_subjects(), std::vector<std::string>{"CN=doppel-mirror,O=Example"});
}

TEST_F(MtlsCliTest, AReplayTargetThatRequiresAClientCertificateGetsOne) {
  WriteGets("s", 3);
  TestTlsUpstreamOptions options;
  options.keep_alive = true;
  options.client_ca_file = pki_->ca();
  TestTlsUpstream target(options);
  const std::string target_ca = CaFileOf(target, "target");
  const TestCertFiles client = Issue("replayer", "/O=Example/CN=doppel-replay");

  ProgramRun without = Doppel({"replay", "--session", "s", "--target", target.url(), "--target-ca",
                               target_ca, "--max", "--no-progress"});
  EXPECT_NE(without.code, 0) << without.out;
  EXPECT_TRUE(target.answered().empty());

  ProgramRun with =
      Doppel({"replay", "--session", "s", "--target", target.url(), "--target-ca", target_ca,
              "--target-cert", client.cert, "--target-key", client.key, "--max", "--no-progress"});
  EXPECT_EQ(with.code, 0) << with.out << with.err;
  EXPECT_EQ(target.answered().size(), 3u);
  ASSERT_FALSE(target.client_subjects().empty());
  for (const std::string& s : target.client_subjects()) EXPECT_EQ(s, "CN=doppel-replay,O=Example");
}

TEST_F(MtlsCliTest, TheListenerRequiresAClientCertificateAndRecordsItsSubject) {
  TestUpstream up;
  const TestCertFiles server = Issue("proxy", "/CN=127.0.0.1");
  const TestCertFiles billing = Issue("billing", "/O=Example/CN=billing");
  const TestCertFiles other = Issue("other", "/O=Example/CN=other");
  const TestCertFiles third = Issue("third", "/O=Example/CN=third");
  const TestCertFiles expired = Issue("expired", "/O=Example/CN=billing-expired", -1);
  const std::string rules = dir_ + "/rules.yaml";
  std::ofstream(rules) << "rules:\n"
                       << "  - name: other-file\n"
                       << "    client_cert_subject: {exact: \"CN=other,O=Example\"}\n";
  RecordProcess rec(
      store_, up.url(),
      {"--session", "mtls", "--tls-cert", server.cert, "--tls-key", server.key, "--tls-client-ca",
       pki_->ca(), "--match", "name=billing-flag,client_cert_subject=CN=billing\\,O=Example",
       "--rules", rules});
  ASSERT_TRUE(rec.started()) << rec.child().all_stderr();
  const std::string base = "https://127.0.0.1:" + std::to_string(rec.port());
  auto curl = [&](const std::string& path, const TestCertFiles* cert, const char* version) {
    std::vector<std::string> args = {"/usr/bin/curl", "-sS",        "--cacert", pki_->ca(),
                                     version,         "--max-time", "20",       base + path};
    if (cert != nullptr) {
      args.insert(args.end(), {"--cert", cert->cert, "--key", cert->key});
    }
    return RunProgram(args);
  };
  const ProgramRun no_cert = curl("/no-cert", nullptr, "--http1.1");
  EXPECT_NE(no_cert.code, 0) << no_cert.out;
  const ProgramRun no_cert_h2 = curl("/no-cert-h2", nullptr, "--http2");
  EXPECT_NE(no_cert_h2.code, 0) << no_cert_h2.out;
  const ProgramRun old = curl("/expired", &expired, "--http1.1");
  EXPECT_NE(old.code, 0) << old.out;
  EXPECT_NE(old.err.find("certificate expired"), std::string::npos) << old.err;
  for (const auto& [path, cert, version] :
       std::vector<std::tuple<std::string, const TestCertFiles*, const char*>>{
           {"/billing-h1", &billing, "--http1.1"},
           {"/billing-h2", &billing, "--http2"},
           {"/other", &other, "--http2"},
           {"/third", &third, "--http1.1"}}) {
    const ProgramRun ok = curl(path, cert, version);
    EXPECT_EQ(ok.code, 0) << path << ": " << ok.err;
  }
  EXPECT_EQ(up.requests().size(), 4u);
  // Two clients without a certificate, one with an expired one.
  EXPECT_TRUE(
      Eventually([&] { return rec.Metric("doppel_tls_handshakes_failed_total") == 3; }, 20000))
      << rec.Metric("doppel_tls_handshakes_failed_total");
  rec.child().Signal(SIGTERM);
  ASSERT_EQ(rec.child().Wait(30000), 0) << rec.child().all_stderr();
  // The proxy says why it turned each client away: the expired certificate by name.
  const std::string log = rec.child().all_stderr();
  EXPECT_NE(log.find("TLS client 127.0.0.1 refused: certificate has expired"), std::string::npos)
      << log;
  EXPECT_NE(log.find("TLS client 127.0.0.1 refused: peer did not return a certificate"),
            std::string::npos)
      << log;

  // Recorded: the clients the rules select, with their verified subjects; not /third.
  const std::vector<json::object> envelopes = Envelopes("mtls");
  ASSERT_EQ(envelopes.size(), 3u);
  struct Want {
    std::string target, subject, rule, protocol;
  };
  const std::vector<Want> want = {
      {"/billing-h1", "CN=billing,O=Example", "billing-flag", "http/1.1"},
      {"/billing-h2", "CN=billing,O=Example", "billing-flag", "h2"},
      {"/other", "CN=other,O=Example", "other-file", "h2"}};
  for (size_t i = 0; i < want.size(); ++i) {
    const json::object& e = envelopes[i];
    EXPECT_EQ(e.at("request").at("target").as_string(), want[i].target);
    EXPECT_EQ(e.at("client_cert_subject").as_string(), want[i].subject) << want[i].target;
    EXPECT_EQ(e.at("matched_rule").as_string(), want[i].rule) << want[i].target;
    EXPECT_EQ(e.at("client_protocol").as_string(), want[i].protocol) << want[i].target;
  }
}

TEST_F(MtlsCliTest, CertificatesAndKeysThatCannotBeUsedAreRefusedAtStart) {
  const TestCertFiles good = Issue("good", "/O=Example/CN=good");
  const TestCertFiles expired = Issue("stale", "/O=Example/CN=stale", -1);
  const std::string loose_key = dir_ + "/loose.key";
  std::filesystem::copy_file(good.key, loose_key);
  ASSERT_EQ(::chmod(loose_key.c_str(), 0644), 0);
  TestUpstream up;
  WriteGets("s", 1);
  const std::string https = "https://127.0.0.1:" + std::to_string(DeadPort());
  struct Case {
    std::vector<std::string> args;
    std::vector<std::string> says;  // the message names these
  };
  const std::vector<Case> cases = {
      {{"record", "--upstream", https, "--upstream-cert", expired.cert, "--upstream-key",
        expired.key},
       {expired.cert, "CN=stale", "expired at"}},
      {{"record", "--upstream", up.url(), "--tls-cert", expired.cert, "--tls-key", expired.key},
       {"--tls-cert", expired.cert, "expired at"}},
      {{"record", "--upstream", https, "--upstream-cert", good.cert, "--upstream-key", loose_key},
       {loose_key, "mode 0644", "chmod 600"}},
      {{"record", "--upstream", up.url(), "--tls-cert", good.cert, "--tls-key", loose_key},
       {"--tls-key", loose_key, "chmod 600"}},
      {{"record", "--upstream", up.url(), "--mirror",
        https + ",cert=" + good.cert + ",key=" + loose_key},
       {"--mirror", loose_key, "chmod 600"}},
      {{"record", "--upstream", https, "--upstream-cert", good.cert},
       {"--upstream-cert and --upstream-key go together"}},
      {{"record", "--upstream", up.url(), "--upstream-cert", good.cert, "--upstream-key", good.key},
       {"https:// primary"}},
      {{"record", "--upstream", up.url(), "--mirror", https + ",cert=" + good.cert},
       {"cert=FILE and key=FILE go together"}},
      {{"record", "--upstream", up.url(), "--tls-client-ca", pki_->ca()},
       {"--tls-client-ca needs TLS on the listener"}},
      {{"record", "--upstream", up.url(), "--tls-cert", good.cert, "--tls-key", good.key,
        "--tls-client-ca", dir_ + "/missing-ca.pem"},
       {"--tls-client-ca", "missing-ca.pem"}},
      {{"replay", "--session", "any", "--target", https, "--target-cert", good.cert},
       {"--target-cert and --target-key go together"}},
      {{"replay", "--session", "s", "--target", https, "--target-cert", good.cert, "--target-key",
        loose_key, "--no-probe"},
       {"TLS to the targets", loose_key, "chmod 600"}},
      {{"replay", "--session", "s", "--target", up.url(), "--target-cert", good.cert,
        "--target-key", good.key},
       {"--target-cert and --target-key are for https:// targets"}},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = c.args;
    if (args[0] == "record") args.insert(args.end(), {"--listen", "127.0.0.1:0"});
    const ProgramRun r = Doppel(args);
    std::string joined;
    for (const auto& a : c.args) joined += a + " ";
    EXPECT_EQ(r.code, 2) << joined << "\n" << r.out;
    for (const std::string& s : c.says)
      EXPECT_NE(r.err.find(s), std::string::npos) << joined << ": want '" << s << "' in " << r.err;
    EXPECT_EQ(r.out.find("listening on"), std::string::npos) << joined;
  }
}

}  // namespace
}  // namespace doppel::testing
