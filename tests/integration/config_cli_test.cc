// `doppel record --config FILE` (issue #18) and live reconfiguration (issue #17) with the real
// binary: the file and the flags that win over it, --print-config, every flag in the schema,
// and reloads by SIGHUP and POST /config — applied, or refused whole with the old
// configuration kept — each one on /metrics and in the audit log.
#include <gtest/gtest.h>
#include <signal.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "recorder/record_config.h"
#include "tests/base/temp_dir.h"
#include "tests/integration/child_process.h"
#include "tests/integration/hardening_util.h"
#include "tests/net/test_upstream.h"

namespace doppel::testing {
namespace {

class ConfigCliTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = MakeTempDir("config-cli"); }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Runs doppel to the end; its exit code, stdout in *out and stderr in *err.
  int Run(std::vector<std::string> args, std::string* out, std::string* err = nullptr) {
    args.insert(args.begin(), {DoppelBinary(), "--store", dir_ + "/store"});
    ChildProcess p(args);
    const int rc = p.Wait(30000);
    *out = p.all_stdout();
    if (err != nullptr) *err = p.all_stderr();
    return rc;
  }
  void Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ + "/" + name) << text;
  }

  std::string dir_;
};

TEST_F(ConfigCliTest, FileFlagsWinAndPrintConfigReadsBack) {
  Write("record.yaml",
        "upstream: {url: 'http://127.0.0.1:9000'}\n"
        "sampling: {percent: 25}\n"
        "mirroring:\n"
        "  mirrors: ['http://127.0.0.1:9001,percent=10,name=canary']\n"
        "faults: {spec: 'delay:10ms:5%'}\n");
  std::string out, err;
  ASSERT_EQ(Run({"record", "--config", dir_ + "/record.yaml", "--sample", "50", "--print-config"},
                &out, &err),
            0)
      << err;
  const boost::json::value v = boost::json::parse(out);
  EXPECT_EQ(v.at("upstream").at("url").as_string(), "http://127.0.0.1:9000");
  EXPECT_EQ(v.at("sampling").at("percent").to_number<double>(), 50);  // the flag wins
  EXPECT_EQ(v.at("mirroring").at("mirrors").at(0).as_string(),
            "http://127.0.0.1:9001,percent=10,name=canary");
  EXPECT_EQ(v.at("faults").at("spec").as_string(), "delay:10ms:5%");
  EXPECT_EQ(v.at("listener").at("listen").as_string(), "127.0.0.1:8080");  // the default

  // What --print-config wrote is a configuration file that says the same.
  Write("effective.json", out);
  std::string again;
  ASSERT_EQ(Run({"record", "--config", dir_ + "/effective.json", "--print-config"}, &again), 0);
  EXPECT_EQ(again, out);

  // Errors name the file, the line and the field; nothing starts.
  Write("typo.yaml", "upstream:\n  url: 'http://127.0.0.1:9000'\nsampling:\n  percnt: 5\n");
  EXPECT_EQ(Run({"record", "--config", dir_ + "/typo.yaml"}, &out, &err), 2);
  EXPECT_NE(err.find("typo.yaml: line 4"), std::string::npos) << err;
  EXPECT_NE(err.find("sampling.percnt"), std::string::npos) << err;
  EXPECT_EQ(Run({"record", "--config", dir_ + "/nope.yaml"}, &out, &err), 2);
  EXPECT_NE(err.find("nope.yaml"), std::string::npos) << err;
  EXPECT_EQ(Run({"record", "--listen", "127.0.0.1:0"}, &out, &err), 2);
  EXPECT_NE(err.find("--upstream URL is required"), std::string::npos) << err;
}

// Every flag of `record` can be said in the file: the table has a row for each.
TEST_F(ConfigCliTest, EveryRecordFlagHasAConfigField) {
  std::string help;
  ASSERT_EQ(Run({"record", "--help"}, &help), 0);
  std::set<std::string> flags;
  const std::regex flag(R"((^|[\s,])(--[a-z0-9][a-z0-9-]*))");
  for (std::sregex_iterator it(help.begin(), help.end(), flag), end; it != end; ++it) {
    flags.insert((*it)[2].str());
  }
  ASSERT_GT(flags.size(), 50u) << help;
  std::set<std::string> rows;
  for (const auto& f : recorder::RecordConfigFields()) rows.insert(std::string(f.flag));
  for (const std::string& f : flags) {
    if (f == "--help" || f == "--config" || f == "--print-config") continue;
    EXPECT_TRUE(rows.count(f)) << f << " has no field in doppel.v1.RecordConfig";
  }
}

// Audit lines of one event, in order.
std::vector<boost::json::object> AuditLines(const std::string& path, const std::string& event) {
  std::vector<boost::json::object> out;
  std::istringstream in(ReadFile(path));
  for (std::string line; std::getline(in, line);) {
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(line, ec);
    if (ec || !v.is_object()) continue;
    const boost::json::object& o = v.as_object();
    if (o.contains("event") && o.at("event") == boost::json::value(event)) out.push_back(o);
  }
  return out;
}

TEST_F(ConfigCliTest, SighupAndPostConfigReloadOrRefuseWhole) {
  TestUpstream primary, mirror;
  const std::string config = dir_ + "/record.yaml", audit = dir_ + "/audit.log";
  Write("record.yaml", "sampling: {percent: 100}\n");
  RecordProcess rec(dir_ + "/store", primary.url(), {"--config", config, "--session", "live"},
                    {"DOPPEL_AUDIT_LOG=" + audit});
  ASSERT_TRUE(rec.started()) << rec.child().all_stderr();
  EXPECT_EQ(rec.Metric("doppel_config_generation"), 1);
  ASSERT_EQ(Fetch(rec.port(), "GET", "/one").result_int(), 200u);
  ASSERT_TRUE(Eventually([&] { return rec.StatusStored() == 1; }, 20000));

  // SIGHUP: the file read again — a mirror added, recording off.
  Write("record.yaml",
        "sampling: {percent: 0}\nmirroring:\n  mirrors: ['" + mirror.url() + ",name=shadow']\n");
  rec.child().Signal(SIGHUP);
  ASSERT_TRUE(Eventually([&] { return rec.Metric("doppel_config_generation") == 2; }, 20000))
      << rec.child().all_stderr();
  ASSERT_EQ(Fetch(rec.port(), "GET", "/two").result_int(), 200u);
  EXPECT_TRUE(Eventually([&] { return mirror.requests().size() == 1; }));
  EXPECT_EQ(rec.Status().at("sample_percent").to_number<double>(), 0);

  // A broken file: refused, generation 2 stays, the mirror keeps getting copies.
  Write("record.yaml", "sampling:\n  percent: 0\n  bogus: 1\n");
  rec.child().Signal(SIGHUP);
  ASSERT_TRUE(Eventually([&] { return AuditLines(audit, "reload").size() == 2; }, 20000));
  EXPECT_EQ(rec.Metric("doppel_config_generation"), 2);
  ASSERT_EQ(Fetch(rec.port(), "GET", "/three").result_int(), 200u);
  EXPECT_TRUE(Eventually([&] { return mirror.requests().size() == 2; }));

  // POST /config: a document in place of the file.
  auto posted = Fetch(rec.admin_port(), "POST", "/config", R"({"sampling": {"percent": 100}})");
  ASSERT_EQ(posted.result_int(), 200u) << posted.body();
  const boost::json::value reply = boost::json::parse(posted.body());
  EXPECT_EQ(reply.at("applied"), true);
  EXPECT_EQ(reply.at("generation").to_number<int>(), 3);
  EXPECT_EQ(rec.Metric("doppel_config_generation"), 3);
  ASSERT_EQ(Fetch(rec.port(), "GET", "/four").result_int(), 200u);
  EXPECT_TRUE(Eventually([&] { return rec.StatusStored() == 2; }, 20000));
  // A field that needs a restart: refused whole, with the field named.
  auto refused = Fetch(rec.admin_port(), "POST", "/config",
                       R"({"sampling": {"percent": 5}, "listener": {"threads": 7}})");
  EXPECT_EQ(refused.result_int(), 400u);
  EXPECT_NE(refused.body().find("listener.threads"), std::string::npos) << refused.body();
  EXPECT_EQ(rec.Status().at("sample_percent").to_number<double>(), 100);
  EXPECT_EQ(rec.Metric("doppel_config_generation"), 3);
  // A body that is not a document at all: refused with where it broke.
  auto broken = Fetch(rec.admin_port(), "POST", "/config", "{\"sampling\": {\"percent\": ");
  EXPECT_EQ(broken.result_int(), 400u);
  EXPECT_NE(broken.body().find("line 1"), std::string::npos) << broken.body();
  EXPECT_EQ(rec.Metric("doppel_config_generation"), 3);

  rec.child().Signal(SIGTERM);
  EXPECT_EQ(rec.child().Wait(30000), 0) << rec.child().all_stderr();
  const std::string& err = rec.child().all_stderr();
  EXPECT_NE(err.find("SIGHUP: configuration 2 applied (sampling.percent: 100 -> 0; "
                     "mirroring.mirrors: [] -> [\"" +
                     mirror.url() + ",name=shadow\"])"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("SIGHUP: reload refused, configuration 2 stays"), std::string::npos) << err;

  // Every reload is in the audit log, applied or not, and the log verifies.
  const auto reloads = AuditLines(audit, "reload");
  ASSERT_EQ(reloads.size(), 5u) << ReadFile(audit);
  const std::vector<std::pair<std::string, bool>> expected = {{"SIGHUP", true},
                                                              {"SIGHUP", false},
                                                              {"POST /config", true},
                                                              {"POST /config", false},
                                                              {"POST /config", false}};
  for (size_t i = 0; i < reloads.size(); ++i) {
    EXPECT_EQ(reloads[i].at("origin").as_string(), expected[i].first) << i;
    EXPECT_EQ(reloads[i].at("applied").as_bool(), expected[i].second) << i;
  }
  EXPECT_NE(boost::json::serialize(reloads[1].at("error")).find("bogus"), std::string::npos);
  std::string out;
  EXPECT_EQ(Run({"audit", "verify", audit}, &out), 0) << out;
}

}  // namespace
}  // namespace doppel::testing
