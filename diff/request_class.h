// A request's class (docs/sampling.md): method, endpoint template, response status and
// response shape. Two requests of one class exercise the same code path as far as can be told
// from outside. The recorder's coverage sampling keeps every class (recorder/
// coverage_sampler.h); `doppel sessions classes` and `minimize` group envelopes by it.
//
//   GET /users/{id} 200 json:5f3a9c1e      (JSON body: a hash of its key set and value types)
//   GET /logo.png 200 type:image/png        (any other body: its media type)
//   POST /orders 502 error:upstream_connect (the proxy answered itself)
//
// The shape of a JSON body is a hash of its structure only: every object's set of keys with
// the shape of each value (key order does not matter), arrays as the set of their elements'
// shapes (length and order do not matter), scalars as their type (string, number, bool,
// null). Values never enter it, so two users' profiles have the same shape.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "diff/endpoint.h"
#include "doppel/v1/envelope.pb.h"

namespace doppel::diff {

// "json:XXXXXXXX" for a complete JSON body whose media type is application/json or
// "+json"; "type:MEDIA" (lowercase, without parameters) for other bodies, JSON that does not
// parse (or was truncated), and bodies with a content coding ("type:MEDIA;CODING", the body
// is not decoded on the proxy thread); "empty" for no body; "type:none" for a body without
// Content-Type. Never fails: anything from the network gives some shape.
std::string ResponseShape(std::string_view content_type, std::string_view content_encoding,
                          std::string_view body, bool body_complete);

// The 32-bit structural hash behind "json:": nullopt when `body` is not one JSON document.
// Nesting deeper than 64 levels is not JSON here (nullopt).
std::optional<uint32_t> JsonShapeHash(std::string_view body);

// "METHOD TEMPLATE STATUS SHAPE"; the template comes from `namer` (automatic {id}
// templating, or explicit patterns). A request without method or target (a malformed head)
// is "- -".
std::string ClassLabel(const EndpointNamer& namer, std::string_view method, std::string_view target,
                       unsigned status, std::string_view shape);

// The requests an envelope stands for: 1/inclusion_probability, or 1 when the probability is
// unknown (0: recorded before it existed, imports) or out of range.
double InverseProbability(const doppel::v1::Envelope& envelope);

// The requests a class of a session stood for (docs/sampling.md): `counted`, the recorder's
// count of them (SessionCounts.classes), when it has one that covers the class's `envelopes`;
// else `inverse_sum`, the sum of their InverseProbability (Horvitz-Thompson). A count below the
// envelopes is not the whole class: it re-entered the recorder's bounded table after being
// evicted.
double ClassRequests(uint64_t envelopes, double inverse_sum, std::optional<uint64_t> counted);

// The class of a recorded exchange: its stored `sample_class` when set, else computed from
// the envelope. A request the proxy answered itself (`error` set) has the shape
// "error:NAME" (upstream_connect, upstream_timeout, ...) and, without a response, the status
// the proxy answered (400, 413, 502, 504).
std::string ClassOf(const doppel::v1::Envelope& envelope, const EndpointNamer& namer);
// The same, always computed (the recorder, before it stores the label).
std::string ComputeClass(const doppel::v1::Envelope& envelope, const EndpointNamer& namer);
// The same, with the response's Content-Type and Content-Encoding given rather than looked
// up in its headers (the recorder keeps a candidate's fields out of its envelope until the
// class decided to keep it).
std::string ComputeClass(const doppel::v1::Envelope& envelope, std::string_view content_type,
                         std::string_view content_encoding, const EndpointNamer& namer);

}  // namespace doppel::diff
