// Header lookups and edits on recorded messages (doppel.v1.Header lists: envelopes, imports,
// redaction). Names compare case-insensitively, as HTTP field names do. The Beast side of the
// same rules is net/headers.h.
#pragma once

#include <string>
#include <string_view>

#include "doppel/v1/envelope.pb.h"

namespace doppel::net {

using ProtoHeaders = google::protobuf::RepeatedPtrField<doppel::v1::Header>;

// The first value of header `name`, nullptr if absent.
const std::string* FindHeader(const ProtoHeaders& headers, std::string_view name);

// Sets the value of every header named `name`; adds none when there is none.
void ReplaceHeader(ProtoHeaders* headers, std::string_view name, const std::string& value);

// Removes every header named `name`, keeping the order of the others.
void RemoveHeader(ProtoHeaders* headers, std::string_view name);

// Removes hop-by-hop headers as the proxy does before storing: Connection and every header it
// names, and each header IsHopByHop (net/headers.h) names.
void StripHopByHop(ProtoHeaders* headers);

}  // namespace doppel::net
