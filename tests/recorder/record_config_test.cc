// The record configuration document (recorder/record_config.h): the table against the schema,
// resolution (defaults < file < flags given), errors with line and field, and the round trip
// through --print-config's JSON.
#include "recorder/record_config.h"

#include <google/protobuf/descriptor.h>
#include <gtest/gtest.h>

#include <boost/json/serialize.hpp>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "doppel/v1/config.pb.h"
#include "tests/base/temp_dir.h"

namespace doppel::recorder {
namespace {

namespace pb = google::protobuf;

// A temp dir for one test, removed at the end.
class ConfigDir {
 public:
  ConfigDir() : path_(testing::MakeTempDir("record-config")) {}
  ~ConfigDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// "listener.tls.cert" for every scalar or repeated field of `type`, recursively.
void LeafPaths(const pb::Descriptor& type, const std::string& prefix, std::set<std::string>* out) {
  for (int i = 0; i < type.field_count(); ++i) {
    const pb::FieldDescriptor* f = type.field(i);
    const std::string path = prefix + f->name();
    if (f->message_type() != nullptr && !f->is_repeated()) {
      LeafPaths(*f->message_type(), path + ".", out);
    } else {
      out->insert(path);
    }
  }
}

TEST(RecordConfigTest, EverySchemaFieldHasARowAndEveryRowAField) {
  std::set<std::string> schema;
  LeafPaths(*v1::RecordConfig::descriptor(), "", &schema);
  std::set<std::string> rows, flags;
  for (const RecordConfigField& f : RecordConfigFields()) {
    EXPECT_TRUE(rows.insert(std::string(f.path)).second) << "two rows for " << f.path;
    EXPECT_TRUE(flags.insert(std::string(f.flag)).second) << "two rows for " << f.flag;
    EXPECT_TRUE(f.flag.starts_with("--")) << f.flag;
  }
  EXPECT_EQ(rows, schema);
}

TEST(RecordConfigTest, DefaultsThenFileThenFlagsGiven) {
  ConfigDir dir;
  const std::string file = dir.path() + "/record.yaml";
  std::ofstream(file) << "upstream: {url: 'http://127.0.0.1:9000'}\n"
                         "listener:\n"
                         "  threads: 3\n"
                         "  tls: {cert: c.pem}\n"
                         "sampling: {percent: 12.5, key: 'header:X-User'}\n"
                         "mirroring:\n"
                         "  mirrors: ['http://127.0.0.1:9001,percent=5', 'http://127.0.0.1:9002']\n"
                         "  sameSample: true\n"  // JSON names work too
                         "faults: {seed: 42}\n";
  RecordConfigSource src;
  src.file = file;
  src.defaults.threads = 8;
  src.defaults.listen = "127.0.0.1:8080";
  src.flags = src.defaults;
  src.flags.store_path = "/var/lib/doppel";
  src.flags.sample = 50;          // given: wins over the file's 12.5
  src.flags.idle_timeout = "5s";  // not given: the default stays
  src.given = {"sampling.percent"};
  auto o = ResolveRecordConfig(src);
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->upstream, "http://127.0.0.1:9000");
  EXPECT_EQ(o->threads, 3);
  EXPECT_EQ(o->tls_cert, "c.pem");
  EXPECT_EQ(o->sample, 50);
  EXPECT_EQ(o->sample_key, "header:X-User");
  EXPECT_EQ(o->mirrors,
            (std::vector<std::string>{"http://127.0.0.1:9001,percent=5", "http://127.0.0.1:9002"}));
  EXPECT_TRUE(o->mirror_same_sample);
  EXPECT_EQ(o->fault_seed, 42u);
  EXPECT_EQ(o->listen, "127.0.0.1:8080");
  EXPECT_EQ(o->idle_timeout, "60s");
  EXPECT_EQ(o->store_path, "/var/lib/doppel");  // not a field: from the flags

  // --print-config's document reads back to the same options.
  const std::string json = boost::json::serialize(RecordConfigJson(*o));
  auto doc = net::ParseConfig(json, net::ConfigFormat::kJson);
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  RecordConfigSource again;
  auto back = ApplyRecordConfig(again, SessionOptions{}, doc.value());
  ASSERT_TRUE(back.ok()) << back.status().ToString() << "\n" << json;
  for (const RecordConfigField* f : ChangedRecordConfigFields(*o, *back)) {
    ADD_FAILURE() << f->path << ": " << RecordConfigValueText(*f, *o) << " vs "
                  << RecordConfigValueText(*f, *back);
  }
}

TEST(RecordConfigTest, ErrorsNameTheFileLineAndField) {
  ConfigDir dir;
  struct Case {
    const char* yaml;
    const char* wanted[3];
  } cases[] = {
      {"sampling:\n  percnt: 5\n", {"line 2", "sampling.percnt", "unknown field"}},
      {"listener:\n  threads: two\n", {"line 2", "listener.threads", "number"}},
      {"listener:\n  threads: 2.5\n", {"line 2", "listener.threads", "whole number"}},
      {"mirroring:\n  mirrors: http://x\n", {"line 2", "mirroring.mirrors", "expected a list"}},
      {"faults:\n  max_active: -1\n", {"line 2", "faults.max_active", "whole number"}},
      {"sampling:\n  percent: 1e999\n", {"line 2", "sampling.percent", "finite"}},
      {"- just\n- a list\n", {"record.yaml", "object of sections", ""}},
      // Found by the record_config fuzz target: YAML passes bytes through, and --print-config
      // wrote them back as JSON nothing could read.
      {"sinks:\n  urls: [store, \"\xe9t\xe9\"]\n", {"line 2", "sinks.urls[1]", "UTF-8"}},
  };
  for (const Case& c : cases) {
    const std::string file = dir.path() + "/record.yaml";
    std::ofstream(file) << c.yaml;
    RecordConfigSource src;
    src.file = file;
    auto o = ResolveRecordConfig(src);
    ASSERT_FALSE(o.ok()) << c.yaml;
    const std::string msg = o.status().ToString();
    EXPECT_NE(msg.find(file), std::string::npos) << msg;
    for (const char* w : c.wanted) EXPECT_NE(msg.find(w), std::string::npos) << w << " in " << msg;
  }
  RecordConfigSource missing;
  missing.file = dir.path() + "/nope.yaml";
  auto o = ResolveRecordConfig(missing);
  ASSERT_FALSE(o.ok());
  EXPECT_NE(o.status().ToString().find("nope.yaml"), std::string::npos) << o.status().ToString();
}

TEST(RecordConfigTest, ChangedFieldsAndWhichAreLive) {
  SessionOptions a, b;
  b.sample = 10;
  b.threads = 4;
  b.mirrors = {"http://m"};
  std::vector<std::string> changed;
  for (const RecordConfigField* f : ChangedRecordConfigFields(a, b)) {
    changed.push_back(std::string(f->path) + (f->live ? " live" : " restart"));
  }
  EXPECT_EQ(changed, (std::vector<std::string>{"listener.threads restart", "sampling.percent live",
                                               "mirroring.mirrors live"}));
}

}  // namespace
}  // namespace doppel::recorder
