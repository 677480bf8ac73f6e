// WebSocket messages for comparison (docs/replay.md, "WebSocket"): the data messages (text and
// binary) the server sent on a replayed connection against the ones the primary sent on the
// recorded connection, in order, under the path root `websocket`: `websocket[2]` is the
// server's third data message, `websocket[2].price` a field of it when the message is JSON.
// Control frames (ping, pong, close) and the client's messages are not compared. When the
// recording kept only its first messages (messages_truncated), later replayed ones are not
// compared either.
//
// Each message becomes one JSON value, so every rule, normalizer and noise feature of the JSON
// diff applies unchanged:
// - a text message that is a JSON object or array is that value;
// - other text is a JSON string;
// - a binary message, or text that is not UTF-8, is the string SizeAndHash (body.h) of its
//   payload;
// - a recorded message whose payload was cut at --capture-body-limit is compared by its size
//   and first bytes only: both sides read "<size> bytes, the first <n> sha256 <hex>".
#pragma once

#include <span>

#include "diff/json_diff.h"
#include "diff/result.h"
#include "diff/rules.h"
#include "doppel/v1/envelope.pb.h"

namespace doppel::diff {

// The path root of WebSocket messages in diffs and rules.
inline constexpr std::string_view kWebSocketRoot = "websocket";

// Compares the server's data messages of `expected` (recorded) and `actual` (replayed) into
// *sink, under `rules` (those of the handshake's request). Thread-safe if *sink is not shared.
void DiffWebSocketMessages(const doppel::v1::WebSocketSession& expected,
                           const doppel::v1::WebSocketSession& actual,
                           std::span<const CompiledRule* const> rules,
                           const JsonDiffOptions& options, DiffSink* sink);

}  // namespace doppel::diff
