// `doppel import` / `doppel export` with HAR, JSON Lines, GoReplay and curl, end to end: the
// real binary on a temporary store; curl commands run by bash against a TestUpstream.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "storage/store.h"
#include "tests/integration/child_process.h"
#include "tests/integration/store_dir_test.h"
#include "tests/net/test_upstream.h"

namespace doppel::testing {
namespace {

std::string Testdata(const std::string& name) {
  return std::string(DOPPEL_SOURCE_DIR) + "/tests/testdata/interop/" + name;
}

size_t Lines(const std::string& s) {
  return static_cast<size_t>(std::count(s.begin(), s.end(), '\n'));
}

class InteropCliTest : public StoreDirTest {
 protected:
  // Runs `doppel --store STORE ARGS...`; returns the exit code.
  int Doppel(std::vector<std::string> args) {
    std::vector<std::string> cmd = {DoppelBinary(), "--store", store_};
    cmd.insert(cmd.end(), args.begin(), args.end());
    child_ = std::make_unique<ChildProcess>(cmd);
    return child_->Wait(60000);
  }
  std::string Out() const { return child_->all_stdout(); }
  std::string Err() const { return child_->all_stderr(); }
  std::string Cat(const std::string& session) {
    EXPECT_EQ(Doppel({"cat", "--session", session}), 0) << Err();
    return Out();
  }
  std::string Write(const std::string& name, const std::string& bytes) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
  std::string Read(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }
  // Every session in the store, hidden ".import.*" ones included.
  std::vector<std::string> AllSessions() {
    std::unique_ptr<storage::Store> s;
    storage::StoreOptions o;
    o.read_only = true;
    o.create_if_missing = false;
    std::vector<std::string> names;
    if (!storage::Store::Open(o, store_, &s).ok()) return names;
    auto list = s->ListSessions();
    if (list.ok())
      for (const auto& info : *list) names.push_back(info.name());
    return names;
  }

  std::unique_ptr<ChildProcess> child_;
};

TEST_F(InteropCliTest, ImportsEachFixture) {
  struct Case {
    std::string file, as, session, source;
    size_t envelopes;
  } cases[] = {
      {"browser.har", "", "browser", "import:har", 6},
      {"traffic.gor", "", "traffic", "import:gor", 4},
      {"traffic.gor.gz", "traffic-gz", "traffic-gz", "import:gor", 4},
      {"session.jsonl", "", "session", "import:jsonl", 4},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = {"import", Testdata(c.file)};
    if (!c.as.empty()) args.insert(args.end(), {"--as", c.as});
    ASSERT_EQ(Doppel(args), 0) << c.file << ": " << Err();
    EXPECT_NE(Out().find("imported " + std::to_string(c.envelopes) + " envelopes as session '" +
                         c.session + "'"),
              std::string::npos)
        << Out();
    ASSERT_EQ(Doppel({"sessions", "show", c.session}), 0) << Err();
    EXPECT_NE(Out().find("envelopes:     " + std::to_string(c.envelopes)), std::string::npos)
        << Out();
    EXPECT_NE(Out().find("source:        " + c.source), std::string::npos) << Out();
    EXPECT_NE(Out().find("state:         imported"), std::string::npos) << Out();
    EXPECT_EQ(Lines(Cat(c.session)), c.envelopes) << c.session;
  }
  // The GoReplay import says what it could not pair.
  ASSERT_EQ(Doppel({"import", Testdata("traffic.gor"), "--as", "again"}), 0);
  EXPECT_NE(Err().find("1 requests have no recorded response"), std::string::npos) << Err();
  EXPECT_NE(Err().find("ignored 1 GoReplay payloads"), std::string::npos) << Err();
  // Plain and gzip GoReplay files hold the same traffic.
  EXPECT_EQ(Cat("traffic"), Cat("traffic-gz"));
  ASSERT_EQ(Doppel({"sessions", "list"}), 0);
  for (const char* name : {"browser", "traffic", "traffic-gz", "session", "again"})
    EXPECT_NE(Out().find(name), std::string::npos) << Out();
}

// A HAR from browser devtools carries cookies and tokens: `doppel import` redacts like `doppel
// record` (the store's key, on by default), --no-redact keeps them.
TEST_F(InteropCliTest, ImportRedactsLikeRecordUnlessNoRedact) {
  ASSERT_EQ(Doppel({"import", Testdata("browser.har")}), 0) << Err();
  std::string cat = Cat("browser");
  EXPECT_EQ(cat.find("abc123"), std::string::npos) << cat;  // cookie: session=abc123
  EXPECT_NE(cat.find("hmac:"), std::string::npos) << cat;
  ASSERT_EQ(Doppel({"import", Testdata("browser.har"), "--as", "clear", "--no-redact"}), 0);
  EXPECT_NE(Cat("clear").find("session=abc123"), std::string::npos);

  const std::string har = Write("login.har", R"({"log": {"version": "1.2", "entries": [{
    "startedDateTime": "2024-05-01T10:20:30.123Z", "time": 5,
    "request": {"method": "POST", "url": "http://shop.test/login?token=tk-s3cr3t&lang=en",
      "httpVersion": "HTTP/1.1",
      "headers": [{"name": "Host", "value": "shop.test"},
                  {"name": "Authorization", "value": "Bearer au-s3cr3t"},
                  {"name": "Cookie", "value": "sid=ck-s3cr3t"},
                  {"name": "X-Tenant", "value": "tn-s3cr3t"},
                  {"name": "Content-Type", "value": "application/json"}],
      "postData": {"mimeType": "application/json",
                   "text": "{\"user\":\"ann\",\"password\":\"pw-s3cr3t\"}"}},
    "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1",
      "headers": [{"name": "Content-Type", "value": "application/json"}],
      "content": {"size": 34, "mimeType": "application/json",
                  "text": "{\"ok\":true,\"password\":\"pw-s3cr3t\"}"}}}]}})");
  ASSERT_EQ(Doppel({"import", har, "--redact-header", "X-Tenant", "--redact-query", "token",
                    "--redact-json-path", "body.password"}),
            0)
      << Err();
  cat = Cat("login");
  EXPECT_EQ(cat.find("s3cr3t"), std::string::npos) << cat;
  EXPECT_NE(cat.find("lang=en"), std::string::npos) << cat;
  EXPECT_NE(cat.find("ann"), std::string::npos) << cat;
  // The store's key: the same values hash the same in every import.
  ASSERT_EQ(Doppel({"import", har, "--as", "login-again", "--redact-header", "X-Tenant",
                    "--redact-query", "token", "--redact-json-path", "body.password"}),
            0)
      << Err();
  EXPECT_EQ(Cat("login-again"), cat);
  // Importing what was exported changes nothing: hashes are not hashed again.
  const std::string jsonl = dir_ + "/login.jsonl";
  ASSERT_EQ(Doppel({"export", "login", jsonl}), 0) << Err();
  ASSERT_EQ(Doppel({"import", jsonl, "--as", "login-round", "--redact-header", "X-Tenant",
                    "--redact-query", "token", "--redact-json-path", "body.password"}),
            0)
      << Err();
  EXPECT_EQ(Cat("login-round"), cat);
  // Bad flags are usage errors that say what to do.
  EXPECT_EQ(Doppel({"import", har, "--as", "x", "--no-redact", "--redact-query", "token"}), 2);
  EXPECT_NE(Err().find("--no-redact"), std::string::npos) << Err();
  EXPECT_EQ(Doppel({"import", har, "--as", "x", "--redact-json-path", "password"}), 2);
  EXPECT_NE(Err().find("body."), std::string::npos) << Err();
}

TEST_F(InteropCliTest, ExportHarAndJsonlAndImportThemAgain) {
  ASSERT_EQ(Doppel({"import", Testdata("browser.har")}), 0) << Err();
  ASSERT_EQ(Doppel({"import", Testdata("session.jsonl")}), 0) << Err();
  for (const std::string session : {"browser", "session"}) {
    const std::string original = Cat(session);
    const std::string har = dir_ + "/" + session + "-out.har";
    const std::string jsonl = dir_ + "/" + session + "-out.jsonl";
    ASSERT_EQ(Doppel({"export", session, har}), 0) << Err();
    EXPECT_NE(Out().find("(HAR, "), std::string::npos) << Out();
    ASSERT_EQ(Doppel({"export", session, jsonl}), 0) << Err();
    EXPECT_EQ(Read(jsonl), original);  // JSON Lines export is `doppel cat`
    ASSERT_EQ(Doppel({"import", har, "--as", session + "-from-har"}), 0) << Err();
    ASSERT_EQ(Doppel({"import", jsonl, "--as", session + "-from-jsonl"}), 0) << Err();
    EXPECT_EQ(Cat(session + "-from-jsonl"), original);
    EXPECT_EQ(Cat(session + "-from-har"), original);
  }
  // `cat SESSION` is `cat --session SESSION`, and a format given before the file works.
  ASSERT_EQ(Doppel({"cat", "session"}), 0) << Err();
  EXPECT_EQ(Out(), Cat("session"));
  EXPECT_EQ(Doppel({"cat", "session", "--session", "other"}), 2);
  const std::string cat_file = Write("cat.jsonl", Cat("session"));
  ASSERT_EQ(Doppel({"import", "--format", "jsonl", cat_file, "--as", "from-cat"}), 0) << Err();
  EXPECT_EQ(Cat("from-cat"), Cat("session"));
  // '-' writes to stdout; the summary goes to stderr.
  ASSERT_EQ(Doppel({"export", "session", "-", "--format", "jsonl"}), 0) << Err();
  const std::string out = Out();
  EXPECT_EQ(out, Cat("session"));
  ASSERT_EQ(Doppel({"export", "session", "-", "--format", "har"}), 0) << Err();
  EXPECT_EQ(Out().rfind("{\"log\":{\"version\":\"1.2\"", 0), 0u) << Out().substr(0, 100);
  EXPECT_NE(Err().find("exported 4 envelopes"), std::string::npos) << Err();
  // The bundle stays the default, and --session/--out still work.
  ASSERT_EQ(Doppel({"export", "--session", "session", "--out", dir_ + "/s.dpl"}), 0) << Err();
  ASSERT_EQ(Doppel({"import", dir_ + "/s.dpl", "--as", "from-bundle"}), 0) << Err();
  EXPECT_EQ(Cat("from-bundle"), out);
}

TEST_F(InteropCliTest, CurlCommandReachesTheUpstreamUnchanged) {
  // Hostile but legal values: quotes, $, backticks, backslashes, newlines in the body, and a
  // binary body with NUL bytes.
  const std::string text_body = "line 1 'single' \\\"double\\\" $HOME `id` \\\\ !bang\\nline 2";
  const std::string jsonl =
      R"({"arrival_us":1000,"seq":0,"request":{"method":"POST","target":"/a/b?q=1&r=%20x",)"
      R"("version":11,"headers":[{"name":"Host","value":"shop.prod"},)"
      R"({"name":"Content-Type","value":"text/plain"},)"
      R"({"name":"X-Quote","value":"it's \"$PATH\" `uname` \\ done"},)"
      R"({"name":"Authorization","value":"hmac:00ff"}],"body":")" +
      text_body +
      R"("}})"
      "\n" +
      R"({"arrival_us":2000,"seq":5,"request":{"method":"PUT","target":"/blob",)"
      R"("version":11,"headers":[{"name":"Host","value":"shop.prod"}],)"
      R"("body":"AAEC/wAnIiRmb28K","body_encoding":"base64"}})"
      "\n";
  ASSERT_EQ(Doppel({"import", Write("hostile.jsonl", jsonl)}), 0) << Err();

  TestUpstream up;
  for (const std::string id : {"1000.0", "2000.5"}) {
    ASSERT_EQ(Doppel({"export", "hostile", "--format", "curl", "--id", id, "--target", up.url()}),
              0)
        << Err();
    const std::string command = Out();
    EXPECT_EQ(command.find("hmac:"), std::string::npos) << command;
    ChildProcess bash({"bash", Write("curl-" + id + ".sh", command)});
    ASSERT_EQ(bash.Wait(30000), 0) << command << "\n" << bash.all_stderr();
  }
  auto reqs = up.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].method, "POST");
  EXPECT_EQ(reqs[0].target, "/a/b?q=1&r=%20x");
  EXPECT_EQ(reqs[0].body, "line 1 'single' \"double\" $HOME `id` \\ !bang\nline 2");
  EXPECT_EQ(reqs[0].Header("X-Quote"), "it's \"$PATH\" `uname` \\ done");
  EXPECT_EQ(reqs[0].Header("Content-Type"), "text/plain");
  EXPECT_FALSE(reqs[0].HasHeader("Authorization"));  // recorded as a hash: left out
  EXPECT_EQ(reqs[1].method, "PUT");
  EXPECT_EQ(reqs[1].target, "/blob");
  EXPECT_EQ(reqs[1].body, std::string("\0\x01\x02\xff\0'\"$foo\n", 12));
  EXPECT_FALSE(reqs[1].HasHeader("Content-Type"));  // none recorded, none invented

  // Into a file, and the recorded Host when no --target is given.
  const std::string file = dir_ + "/replay.sh";
  ASSERT_EQ(Doppel({"export", "hostile", file, "--format", "curl", "--id", "1000"}), 0) << Err();
  EXPECT_NE(Read(file).find("'http://shop.prod/a/b?q=1&r=%20x'"), std::string::npos) << Read(file);
  struct stat st;  // it may carry recorded headers: owner only, like the other exports
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

// What the recording proxy refused (a header block or a body over its limits) never reached
// the primary: HAR and curl, which other tools send again, leave it out and say so.
TEST_F(InteropCliTest, ExportLeavesOutWhatTheProxyRefused) {
  const std::string jsonl =
      R"({"arrival_us":1000,"seq":0,"request":{"method":"GET","target":"/ok","version":11,)"
      R"("headers":[{"name":"Host","value":"shop.prod"}]},"response":{"status":200}})"
      "\n"
      R"({"arrival_us":2000,"seq":0,"error":"PROXY_ERROR_BAD_REQUEST",)"
      R"("error_detail":"header block too large","request":{"method":"GET","target":"/big",)"
      R"("headers":[{"name":"Host","value":"shop.prod"}]}})"
      "\n"
      R"({"arrival_us":3000,"seq":0,"error":"PROXY_ERROR_BODY_TOO_LARGE","request":)"
      R"({"method":"PUT","target":"/upload","headers":[{"name":"Host","value":"shop.prod"}],)"
      R"("body":"first bytes","body_truncated":true,"body_size":99999999}})"
      "\n";
  ASSERT_EQ(Doppel({"import", Write("refused.jsonl", jsonl)}), 0) << Err();

  const std::string har = dir_ + "/refused.har";
  ASSERT_EQ(Doppel({"export", "refused", har}), 0) << Err();
  EXPECT_NE(Out().find("exported 1 envelopes"), std::string::npos) << Out();
  EXPECT_NE(Out().find("2 envelopes the proxy refused were not exported"), std::string::npos)
      << Out();
  ASSERT_EQ(Doppel({"import", har, "--as", "from-har"}), 0) << Err();
  EXPECT_EQ(Lines(Cat("from-har")), 1u);
  // JSON Lines (like a bundle) is the lossless copy: it keeps them.
  ASSERT_EQ(Doppel({"export", "refused", dir_ + "/all.jsonl"}), 0) << Err();
  EXPECT_EQ(Lines(Read(dir_ + "/all.jsonl")), 3u);
  EXPECT_EQ(Out().find("the proxy refused"), std::string::npos) << Out();

  EXPECT_EQ(Doppel({"export", "refused", "--format", "curl", "--id", "2000.0"}), 2);
  EXPECT_NE(Err().find("envelope 2000.0 was refused by the recording proxy "
                       "(PROXY_ERROR_BAD_REQUEST: header block too large) and never reached "
                       "the primary"),
            std::string::npos)
      << Err();
  EXPECT_EQ(Out(), "");
  EXPECT_EQ(Doppel({"export", "refused", "--format", "curl", "--id", "3000.0"}), 2);
  EXPECT_NE(Err().find("PROXY_ERROR_BODY_TOO_LARGE"), std::string::npos) << Err();
  ASSERT_EQ(Doppel({"export", "refused", "--format", "curl", "--id", "1000.0"}), 0) << Err();
}

TEST_F(InteropCliTest, BadFilesExitNonZeroAndLeaveNothing) {
  std::string good = Read(Testdata("session.jsonl"));
  struct Case {
    std::string name, bytes;
    std::vector<std::string> want;
  } cases[] = {
      {"bad.jsonl", "\n\n{\"seq\": oops}\n" + good, {"JSON Lines", "line 3", "--skip-bad"}},
      {"bad.gor", Read(Testdata("traffic.gor")).substr(0, 300), {"GoReplay", "record 2"}},
      {"bad.har",
       "{\"log\":{\"entries\":[{\"startedDateTime\":\"2024-05-01T10:20:30Z\","
       "\"request\":{\"method\":\"GET\",\"url\":42}}]}}",
       {"HAR", "entry 1", "request.url must be a string"}},
      {"bad.gor.gz", Read(Testdata("traffic.gor.gz")).substr(0, 200), {"gzip", "truncated"}},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(Doppel({"import", Write(c.name, c.bytes)}), 2) << c.name;
    for (const auto& w : c.want)
      EXPECT_NE(Err().find(w), std::string::npos) << c.name << ": " << Err();
    EXPECT_TRUE(AllSessions().empty()) << c.name;
  }
  // --skip-bad imports the rest and says how much it skipped.
  ASSERT_EQ(Doppel({"import", dir_ + "/bad.jsonl", "--skip-bad"}), 0) << Err();
  EXPECT_NE(Err().find("skipped 1 bad records"), std::string::npos) << Err();
  EXPECT_NE(Err().find("line 3"), std::string::npos) << Err();
}

TEST_F(InteropCliTest, UsageErrorsAreExitTwo) {
  ASSERT_EQ(Doppel({"import", Testdata("session.jsonl")}), 0) << Err();
  struct Case {
    std::vector<std::string> args;
    std::string want;
  } cases[] = {
      {{"export", "session", "--format", "curl"}, "--id"},
      {{"export", "session", "x.gor", "--format", "gor"}, "import format only"},
      {{"export", "session", "x.har", "--format", "xml"}, "unknown format"},
      {{"export", "session", "x.har", "--id", "1"}, "--format curl"},
      {{"export", "session", "--format", "curl", "--id", "abc"}, "ARRIVAL_US.SEQ"},
      {{"export", "session"}, "which file"},
      {{"import", "--format", "xml", Testdata("session.jsonl")}, "unknown format"},
      {{"import", Write("mystery", "hello\n")}, "--format"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(Doppel(c.args), 2) << c.want;
    EXPECT_NE(Err().find(c.want), std::string::npos) << Err();
  }
  EXPECT_EQ(Doppel({"export", "session", "--format", "curl", "--id", "99.0"}), 2);
  EXPECT_NE(Err().find("no envelope 99.0"), std::string::npos) << Err();
  EXPECT_EQ(Doppel({"import", Testdata("session.jsonl")}), 2);  // the name is taken
  EXPECT_NE(Err().find("--as"), std::string::npos) << Err();
}

}  // namespace
}  // namespace doppel::testing
