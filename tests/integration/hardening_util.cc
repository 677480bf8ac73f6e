#include "tests/integration/hardening_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <filesystem>
#include <sstream>

#include "tests/net/test_upstream.h"

namespace doppel::testing {

RecordProcess::RecordProcess(const std::string& store, const std::string& upstream,
                             std::vector<std::string> extra, std::vector<std::string> env) {
  std::vector<std::string> args = {DoppelBinary(), "--store",     store,     "record",
                                   "--listen",     "127.0.0.1:0", "--admin", "127.0.0.1:0",
                                   "--upstream",   upstream};
  args.insert(args.end(), extra.begin(), extra.end());
  child_ = std::make_unique<ChildProcess>(args, std::move(env));
  port_ = static_cast<uint16_t>(PortOf(child_->WaitForLine("listening on ")));
  if (port_ != 0) admin_port_ = static_cast<uint16_t>(PortOf(child_->WaitForLine("admin on ")));
}

std::string RecordProcess::Admin(const std::string& path) const {
  auto res = Fetch(admin_port_, "GET", path);
  return res.result_int() == 200 ? res.body() : std::string();
}

double RecordProcess::Metric(const std::string& series) const {
  return MetricIn(Admin("/metrics"), series);
}

boost::json::object RecordProcess::Status() const {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(Admin("/status"), ec);
  if (ec || !v.is_object()) return {};
  return v.as_object();
}

int64_t RecordProcess::StatusStored() const {
  const boost::json::object status = Status();
  if (!status.contains("stored")) return -1;
  return status.at("stored").to_number<int64_t>();
}

double MetricIn(const std::string& page, const std::string& series) {
  std::istringstream in(page);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ') {
      return std::stod(line.substr(series.size() + 1));
    }
  }
  return -1;
}

int CountFds(pid_t pid) {
  std::error_code ec;
  int n = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return ec ? -1 : n;
}

}  // namespace doppel::testing
