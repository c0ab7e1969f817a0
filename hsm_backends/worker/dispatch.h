// The worker's operations: one handler per wire::op, typed by the table in wire/protocol.h, and
// the dispatch that decodes a request, runs its handler and encodes the reply.
#pragma once

#include "common/bytes.h"
#include "hsm_backends/backend.h"
#include "hsm_backends/wire/frame.h"

namespace hsmb {

// A payload that does not decode as the op's request.
hsm_error bad_request(wire::op o);

// Runs one request on an opened backend. A payload that is not the op's request is refused with
// ckr_bad_request; a hello is refused too ("already open"): worker_server opens the backend once.
hsm_result<secure_bytes> dispatch(hsm_backend& backend, wire::op o, byte_view payload);

}  // namespace hsmb
