#include "stream/stream_import.h"

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

}  // namespace doppel::stream
