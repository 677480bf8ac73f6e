#include "stream/stream_import.h"

#include <vector>

#include "interop/session_import.h"
#include "stream/envelope_stream.h"

namespace doppel::stream {

Result<doppel::v1::SessionInfo> ImportStream(storage::Store& store, const RedisUrl& url,
                                             const std::string& as, StreamImportStats* stats) {
  DOPPEL_ASSIGN_OR_RETURN(auto reader, StreamReader::Open(url));
  doppel::v1::SessionInfo info;
  info.set_name(as.empty() ? url.stream : as);
  info.set_source("import:redis " + url.ToString());
  DOPPEL_ASSIGN_OR_RETURN(auto import, interop::SessionImport::Begin(store, info));
  uint32_t seq = 0;
  for (;;) {
    auto batch = reader->Next();
    if (!batch.ok()) return import->Abort(batch.status());
    if (batch->empty()) break;
    for (StreamEnvelope& entry : *batch) {
      entry.envelope.set_seq(seq++);
      ++stats->envelopes;
      ++stats->by_recorder[entry.recorder_id];
      Status s = import->Add(std::move(entry.envelope));
      if (!s.ok()) return import->Abort(s);
    }
  }
  return import->Commit();
}

Status ExportToStream(storage::Store& store, const std::string& session, const RedisUrl& url,
                      const std::string& recorder_id, uint64_t* exported) {
  DOPPEL_RETURN_IF_ERROR(store.GetSession(session).status());
  {
    DOPPEL_ASSIGN_OR_RETURN(auto client, RedisClient::Connect(url));
    DOPPEL_ASSIGN_OR_RETURN(RedisReply exists, client->Command({"EXISTS", url.stream}));
    DOPPEL_RETURN_IF_ERROR(ExpectType(exists, RedisReply::Type::kInteger, "EXISTS"));
    if (exists.integer != 0)
      return Status::InvalidArgument(url.ToString() +
                                     ": the key exists already; export into a new stream, or "
                                     "delete this one first (redis-cli DEL " +
                                     url.stream + ")");
  }
  StreamWriterOptions o;
  o.recorder_id = recorder_id;
  StreamWriter writer(url, o);
  DOPPEL_RETURN_IF_ERROR(writer.Connect());
  DOPPEL_ASSIGN_OR_RETURN(auto it, store.Scan(session));
  std::vector<doppel::v1::Envelope> batch;
  auto flush = [&]() -> Status {
    if (batch.empty()) return Status::Ok();
    DOPPEL_RETURN_IF_ERROR(writer.Append(batch));
    *exported += batch.size();
    batch.clear();
    return Status::Ok();
  };
  for (; it->Valid(); it->Next()) {
    it->TakeEnvelope(&batch.emplace_back());
    if (batch.size() == 500) DOPPEL_RETURN_IF_ERROR(flush());
  }
  DOPPEL_RETURN_IF_ERROR(it->status());
  return flush();
}

}  // namespace doppel::stream
