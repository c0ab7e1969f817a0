// The table of operations hsm-bench knows; see operation.h.
#include "bench/operation.h"

#include <algorithm>
#include <array>
#include <random>

namespace hsmb::bench {
namespace {

struct operation_info {
  operation op;
  std::string_view name;
  std::string_view key;
  std::size_t input;
};

constexpr std::array<operation_info, 9> table{{
    {operation::sign_ecdsa_p256, "sign-ecdsa-p256", "bench-ec", 32},
    {operation::sign_rsa_2048, "sign-rsa-2048", "bench-rsa", 32},
    {operation::sign_ed25519, "sign-ed25519", "bench-ed", 32},
    {operation::encrypt_32, "encrypt-32", "bench-aes", 32},
    {operation::encrypt_4k, "encrypt-4k", "bench-aes", 4096},
    {operation::decrypt_32, "decrypt-32", "bench-aes", 32},
    {operation::decrypt_4k, "decrypt-4k", "bench-aes", 4096},
    {operation::hmac, "hmac", "bench-mac", 32},
    {operation::random, "random", "", 32},
}};

const operation_info& info(operation op) {
  return *std::ranges::find(table, op, &operation_info::op);
}

}  // namespace

std::optional<operation> parse_operation(std::string_view name) {
  auto it = std::ranges::find(table, name, &operation_info::name);
  if (it == table.end()) return std::nullopt;
  return it->op;
}

std::string_view to_string(operation op) { return info(op).name; }

std::string operation_names() {
  std::string out;
  for (const auto& i : table) out += (out.empty() ? "" : ", ") + std::string(i.name);
  return out;
}

std::string_view default_key(operation op) { return info(op).key; }
std::size_t input_size(operation op) { return info(op).input; }

bool is_sign(operation op) {
  return op == operation::sign_ecdsa_p256 || op == operation::sign_rsa_2048 || op == operation::sign_ed25519;
}
bool is_encrypt(operation op) { return op == operation::encrypt_32 || op == operation::encrypt_4k; }
bool is_decrypt(operation op) { return op == operation::decrypt_32 || op == operation::decrypt_4k; }

bytes random_input(std::size_t n) {
  std::random_device seed;
  std::mt19937 gen(seed());
  std::uniform_int_distribution<int> byte(0, 255);
  bytes out(n);
  for (auto& b : out) b = static_cast<std::uint8_t>(byte(gen));
  return out;
}

}  // namespace hsmb::bench
