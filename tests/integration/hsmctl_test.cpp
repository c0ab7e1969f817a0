// hsmctl against a real broker on SoftHSM2 tokens (README "hsmctl"): every command's output and
// exit status, --output json, input from stdin and --input-file with and without its newline,
// options a command does not take refused, and the members table's units and recovered errors.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>


#include <cstdio>
#include <fstream>

#include "tests/integration/broker_fixture.h"
#include "tests/lib/temp_dir.h"

using namespace hsmb::test;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

struct run_result {
  int code;
  std::string out;
};

// `command` through the shell (run_command); stdout only, or stdout and stderr with `with_stderr`.
run_result run(const std::string& command, bool with_stderr = true) {
  run_result r{-1, ""};
  r.code = run_command(with_stderr ? command : "(" + command + " 2>/dev/null)", &r.out);
  return r;
}

std::string ctl(const broker_process& b) { return std::string(HSMB_BIN_DIR) + "/hsmctl --socket " + b.socket_path() + " "; }

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

json::value parsed(const std::string& s) {
  boost::system::error_code ec;
  auto v = json::parse(s, ec);
  if (ec) FAIL("not JSON: " << s);
  return v;
}

broker_process& broker() { return *single_member_broker::shared().broker; }

}  // namespace

TEST_CASE("keys create, rotate, config, delete print what they did; --output json is the answer") {
  auto c = ctl(broker());
  auto created = run(c + "keys create k1 --type aes256-gcm96");
  CHECK(created.code == 0);
  CHECK(created.out == "created key k1: aes256-gcm96, version 1\n");
  auto rotated = run(c + "keys rotate k1");
  CHECK(rotated.code == 0);
  CHECK(rotated.out == "rotated key k1: version 2 is the latest\n");
  auto shown = run(c + "--output json keys show k1", false);
  CHECK(shown.code == 0);
  CHECK(parsed(shown.out).at("data").at("latest_version").to_number<int>() == 2);
  CHECK(run(c + "-o json keys create k2", false).out.find("\"latest_version\":1") != std::string::npos);

  auto refused = run(c + "keys delete k1");
  CHECK(refused.code == 2);
  CHECK(refused.out.starts_with("hsmctl: 400: "));
  CHECK(run(c + "keys config k1").code == 2);  // nothing to change
  CHECK(run(c + "keys config k1 --deletion-allowed maybe").code == 2);
  auto configured = run(c + "keys config k1 --deletion-allowed true --min-decryption-version 1");
  CHECK(configured.code == 0);
  CHECK(configured.out.find("configured key k1:") == 0);
  CHECK(configured.out.find("deletion_allowed=true") != std::string::npos);
  auto deleted = run(c + "keys delete k1");
  CHECK(deleted.code == 0);
  CHECK(deleted.out == "deleted key k1\n");
  auto gone = run(c + "keys show k1");
  CHECK(gone.code == 2);
  CHECK(gone.out.find("hsmctl: 404: ") == 0);
  CHECK(run(c + "--output json keys delete k2", false).code == 2);  // the 400 body, as JSON, on stdout
  CHECK(parsed(run(c + "--output json keys delete k2", false).out).at("errors").is_array());
}

TEST_CASE("input: operand, stdin with its newline, --no-newline, --input-file") {
  auto c = ctl(broker());
  REQUIRE(run(c + "keys create ed --type ed25519").code == 0);
  auto operand = run(c + "sign ed hello");
  auto piped = run("echo hello | " + c + "sign ed");
  auto stripped = run("echo hello | " + c + "sign ed --no-newline");
  REQUIRE(operand.code == 0);
  CHECK(operand.out.starts_with("vault:v1:"));
  CHECK(piped.out != operand.out);  // "hello\n" was signed: Ed25519 is deterministic
  CHECK(stripped.out == operand.out);
  hsmb::test::temp_dir dir;
  auto file = dir.path.string() + "/in.txt";
  std::ofstream(file) << "hello\r\n";
  CHECK(run(c + "sign ed --input-file " + file + " --no-newline").out == operand.out);
  CHECK(run(c + "sign ed --input-file " + file).out != operand.out);
  CHECK(run(c + "sign ed hello --input-file " + file).code == 2);  // both: refused
  CHECK(run(c + "sign ed hello --no-newline").code == 2);          // an operand has no newline to drop

  auto sig = first_line(operand.out);
  CHECK(run(c + "verify ed hello " + sig).out == "valid\n");
  CHECK(run("printf hello | " + c + "verify ed " + sig).code == 0);
  auto wrong = run("echo hello | " + c + "verify ed " + sig);
  CHECK(wrong.code == 1);
  CHECK(wrong.out == "invalid\n");

  CHECK(run("printf secret | " + c + "encrypt ed").code == 2);  // an error answer: exit 2
  auto help = run(std::string(HSMB_BIN_DIR) + "/hsmctl --help");
  CHECK(help.out.find("--no-newline") != std::string::npos);
  CHECK(help.out.find("signs \"hello\\n\"") != std::string::npos);
}

TEST_CASE("encrypt, decrypt, rewrap, datakey, hmac, random") {
  auto c = ctl(broker());
  REQUIRE(run(c + "keys create aes").code == 0);
  auto ct = first_line(run("printf 'from stdin' | " + c + "encrypt aes").out);
  CHECK(ct.starts_with("vault:v1:"));
  CHECK(run(c + "decrypt aes " + ct).out == "from stdin");
  REQUIRE(run(c + "keys rotate aes").code == 0);
  auto rewrapped = run(c + "rewrap aes " + ct);
  CHECK(rewrapped.code == 0);
  CHECK(rewrapped.out.starts_with("vault:v2:"));
  CHECK(run(c + "decrypt aes " + first_line(rewrapped.out)).out == "from stdin");

  auto dk = run(c + "datakey aes --plaintext");
  CHECK(dk.code == 0);
  auto ct_at = dk.out.find("ciphertext: vault:v2:");
  auto pt_at = dk.out.find("plaintext:  ");
  REQUIRE(ct_at == 0);
  REQUIRE(pt_at != std::string::npos);
  auto dk_ct = dk.out.substr(12, dk.out.find('\n') - 12);
  auto dk_pt = dk.out.substr(pt_at + 12, dk.out.find('\n', pt_at) - pt_at - 12);
  auto opened = run(c + "--output json decrypt aes " + dk_ct, false);
  CHECK(std::string(parsed(opened.out).at("data").at("plaintext").as_string()) == dk_pt);
  auto wrapped = parsed(run(c + "--output json datakey aes --bits 128", false).out);
  CHECK(wrapped.at("data").as_object().contains("ciphertext"));
  CHECK_FALSE(wrapped.at("data").as_object().contains("plaintext"));
  CHECK(unb64(dk_pt).size() == 32);

  REQUIRE(run(c + "keys create mac --type hmac").code == 0);
  auto mac = run(c + "hmac mac hello --hash sha2-512");
  CHECK(mac.code == 0);
  CHECK(mac.out.starts_with("vault:v1:"));
  CHECK(run(c + "verify mac hello " + first_line(mac.out) + " --hmac --hash sha2-512").code == 0);
  CHECK(run(c + "verify mac hellx " + first_line(mac.out) + " --hmac --hash sha2-512").code == 1);

  auto rnd = run(c + "random 8 --hex");
  CHECK(rnd.out.size() == 17);
  auto refused = run(c + "encrypt aes hi --hex");
  CHECK(refused.code == 2);
  CHECK(refused.out.find("--hex does not apply to encrypt") != std::string::npos);
  CHECK(run(c + "decrypt aes a b").code == 2);  // an operand too many
}

TEST_CASE("status and members: words, units, and --output json") {
  auto c = ctl(broker());
  for (int i = 0; i < 5; ++i) run(c + "random 4");
  auto status = run(c + "status");
  CHECK(status.code == 0);
  CHECK(status.out.find("broker:   serving, 1 of 1 members serving\n") == 0);
  CHECK(status.out.find('{') == std::string::npos);  // no raw JSON
  CHECK(status.out.find("P50") != std::string::npos);
  CHECK(status.out.find("ms  ") != std::string::npos);  // latencies carry their unit
  auto j = parsed(run(c + "--output json status", false).out);
  CHECK(j.at("health").at("members").at("serving").to_number<int>() == 1);
  CHECK(j.at("members").as_array().size() == 1);
  CHECK(parsed(run(c + "--output json members", false).out).at("data").at("members").as_array().size() == 1);
  CHECK(parsed(run(c + "--output json random 4", false).out).at("data").as_object().contains("random_bytes"));
  CHECK(parsed(run(c + "--output json keys", false).out).at("data").at("keys").is_array());
}

TEST_CASE("exit codes: unreachable 3, usage 2; offline commands answer JSON too") {
  auto hsmctl = std::string(HSMB_BIN_DIR) + "/hsmctl";
  auto unreachable = run(hsmctl + " --socket /nonexistent/broker.sock status");
  CHECK(unreachable.code == 3);
  CHECK(unreachable.out.find("hsmctl: cannot reach unix:///nonexistent/broker.sock") == 0);
  CHECK(run(hsmctl + " --output yaml status").code == 2);
  CHECK(run(hsmctl + " frobnicate").code == 2);
  auto help = run(hsmctl + " --help");
  CHECK(help.code == 0);
  CHECK(help.out.find("exit status:") != std::string::npos);
  CHECK(help.out.find("3  the broker is unreachable") != std::string::npos);
  auto token = parsed(run(hsmctl + " --output json token new ci-bot", false).out);
  CHECK(std::string(token.at("name").as_string()) == "ci-bot");
  // The line to add holds SHA-256 of the printed token, as sha256sum computes it.
  auto digest = run("printf %s '" + std::string(token.at("token").as_string()) + "' | sha256sum", false).out;
  CHECK(digest.substr(0, 64) == std::string(token.at("sha256").as_string()));
  CHECK(token.at("token").as_string().size() >= 43);  // 32 random bytes, base64url
  hsmb::test::temp_dir dir;
  std::ofstream(dir.path.string() + "/audit.log") << "";
  auto verified = parsed(run(hsmctl + " --output json audit verify " + dir.path.string() + "/audit.log", false).out);
  CHECK(verified.at("ok").as_bool());
  std::ofstream(dir.path.string() + "/bad.log") << "{\"not\":\"chained\"}\n";
  auto bad = run(hsmctl + " --output json audit verify " + dir.path.string() + "/bad.log", false);
  CHECK(bad.code == 1);
  CHECK_FALSE(parsed(bad.out).at("ok").as_bool());
}

TEST_CASE("members: a down member's LAST-ERROR has its age, and is marked recovered once it serves") {
  softhsm_token t("hsm-a");
  member_spec a{"hsm-a", softhsm_token::module_path(), t.label(), t.pin(), {{"SOFTHSM2_CONF", t.conf_path()}}};
  member_spec late{"hsm-b", softhsm_token::module_path(), "late", t.pin(), {{"SOFTHSM2_CONF", t.conf_path()}}};
  broker_process b({a, late}, "health: { probe_interval: 200ms, max_backoff: 400ms }\n");
  b.start();
  auto c = ctl(b);
  auto down = run(c + "members");
  CHECK(down.code == 0);
  auto row = down.out.substr(down.out.find("hsm-b"));
  row = row.substr(0, row.find('\n'));
  CHECK(row.find("down") != std::string::npos);
  CHECK(row.find("HSMB_TOKEN_NOT_FOUND") != std::string::npos);
  CHECK(row.find("s ago") != std::string::npos);
  CHECK(row.find("(recovered)") == std::string::npos);
  t.add_token("late");
  std::string now;
  bool serving = eventually([&] {
    now = run(c + "members").out;
    auto r = now.substr(now.find("hsm-b"));
    return r.substr(0, r.find('\n')).find("serving") != std::string::npos;
  }, 10s);
  REQUIRE_MESSAGE(serving, now);
  row = now.substr(now.find("hsm-b"));
  row = row.substr(0, row.find('\n'));
  CHECK(row.find("HSMB_TOKEN_NOT_FOUND") != std::string::npos);
  CHECK(row.find("(recovered)") != std::string::npos);
}
