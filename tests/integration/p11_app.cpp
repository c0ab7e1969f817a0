// A PKCS#11 application for the front module's tests: it loads the module with dlopen, as any
// application does, and runs one scenario, printing what it saw as `name=value` lines.
//   p11_app MODULE sign-loop LABEL PROGRESS_FILE PAUSE_FILE   signs until SIGTERM; pauses while PAUSE_FILE exists
//   p11_app MODULE leak LABEL SIGNS CYCLES                    RSS and descriptors around SIGNS signs and CYCLES init/finalize
//   p11_app MODULE fork LABEL                                 the fork rules
//   p11_app MODULE gcm LABEL                                  AES-GCM: broker-chosen nonce, decrypt, refusals
//   p11_app MODULE mutexes LABEL                              C_Initialize with the application's mutex callbacks
//   p11_app MODULE rv LABEL                                   one sign: prints its CK_RV (outage tests)
//   p11_app MODULE multipart LABEL                            C_SignUpdate/C_VerifyUpdate, the length query, a short buffer
#include <dirent.h>
#include <dlfcn.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "pkcs11_front/cryptoki.h"

namespace {

CK_FUNCTION_LIST* p11 = nullptr;
std::atomic<bool> stop{false};

void load(const char* path) {
  void* h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) { std::fprintf(stderr, "dlopen: %s\n", dlerror()); std::exit(2); }
  auto get = reinterpret_cast<CK_RV (*)(CK_FUNCTION_LIST**)>(dlsym(h, "C_GetFunctionList"));
  if (!get || get(&p11) != CKR_OK) { std::fprintf(stderr, "no C_GetFunctionList\n"); std::exit(2); }
}

void must(CK_RV rv, const char* what) {
  if (rv != CKR_OK) { std::printf("error=%s rv=0x%lx\n", what, rv); std::fflush(stdout); std::exit(1); }
}

CK_SESSION_HANDLE open_session() {
  CK_SESSION_HANDLE s;
  must(p11->C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s), "C_OpenSession");
  return s;
}

CK_OBJECT_HANDLE find_key(CK_SESSION_HANDLE s, const std::string& label, CK_OBJECT_CLASS cls) {
  CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_LABEL, const_cast<char*>(label.data()), label.size()}};
  must(p11->C_FindObjectsInit(s, t, 2), "C_FindObjectsInit");
  CK_OBJECT_HANDLE h = 0;
  CK_ULONG n = 0;
  must(p11->C_FindObjects(s, &h, 1, &n), "C_FindObjects");
  must(p11->C_FindObjectsFinal(s), "C_FindObjectsFinal");
  if (n != 1) { std::printf("error=no key %s\n", label.c_str()); std::exit(1); }
  return h;
}

CK_RV sign_once(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, CK_OBJECT_HANDLE pub, int i) {
  CK_MECHANISM m{CKM_ECDSA_SHA256, nullptr, 0};
  std::string msg = "message " + std::to_string(i);
  CK_RV rv = p11->C_SignInit(s, &m, key);
  if (rv != CKR_OK) return rv;
  CK_BYTE sig[128];
  CK_ULONG len = sizeof sig;
  rv = p11->C_Sign(s, reinterpret_cast<CK_BYTE*>(msg.data()), msg.size(), sig, &len);
  if (rv != CKR_OK || !pub) return rv;
  if ((rv = p11->C_VerifyInit(s, &m, pub)) != CKR_OK) return rv;
  return p11->C_Verify(s, reinterpret_cast<CK_BYTE*>(msg.data()), msg.size(), sig, len);
}

long rss_kib() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

int open_fds() {
  int n = 0;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (readdir(d)) ++n;
    closedir(d);
  }
  return n - 3;  // ".", ".." and the directory's own descriptor
}

int sign_loop(const std::string& label, const std::string& progress, const std::string& pause) {
  signal(SIGTERM, [](int) { stop = true; });
  must(p11->C_Initialize(nullptr), "C_Initialize");
  auto s = open_session();
  auto key = find_key(s, label, CKO_PRIVATE_KEY);
  long calls = 0, failures = 0;
  CK_RV first = CKR_OK;
  double worst_ms = 0;
  while (!stop) {
    if (access(pause.c_str(), F_OK) == 0) {  // the scenario's quiet period: no calls at all
      std::ofstream(progress) << calls << " paused\n";
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    auto t0 = std::chrono::steady_clock::now();
    CK_RV rv = sign_once(s, key, 0, static_cast<int>(calls));
    worst_ms = std::max(worst_ms, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    ++calls;
    if (rv != CKR_OK) {
      if (!failures) first = rv;
      ++failures;
    }
    if (calls % 20 == 0) std::ofstream(progress) << calls << "\n";
  }
  p11->C_Finalize(nullptr);
  std::printf("calls=%ld\nfailures=%ld\nfirst_error=0x%lx\nworst_ms=%.1f\n", calls, failures, first, worst_ms);
  return 0;
}

int leak(const std::string& label, int signs, int cycles) {
  auto round = [&](int n_signs, int n_cycles) {
    for (int c = 0; c < n_cycles; ++c) {
      must(p11->C_Initialize(nullptr), "C_Initialize");
      auto s = open_session();
      auto key = find_key(s, label, CKO_PRIVATE_KEY);
      must(sign_once(s, key, 0, c), "sign");
      must(p11->C_Finalize(nullptr), "C_Finalize");
    }
    must(p11->C_Initialize(nullptr), "C_Initialize");
    auto s = open_session();
    auto key = find_key(s, label, CKO_PRIVATE_KEY);
    auto pub = find_key(s, label, CKO_PUBLIC_KEY);
    for (int i = 0; i < n_signs; ++i) must(sign_once(s, key, i % 10 == 0 ? pub : 0, i), "sign");
    must(p11->C_Finalize(nullptr), "C_Finalize");
  };
  round(signs / 10, cycles / 10);  // warm-up: allocator pools, OpenSSL's tables, lazy loading
  long rss0 = rss_kib();
  int fds0 = open_fds();
  auto t0 = std::chrono::steady_clock::now();
  round(signs, cycles);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("rss_before_kib=%ld\nrss_after_kib=%ld\nfds_before=%d\nfds_after=%d\nseconds=%.1f\n", rss0, rss_kib(), fds0,
              open_fds(), secs);
  return 0;
}

int fork_rules(const std::string& label) {
  must(p11->C_Initialize(nullptr), "C_Initialize");
  auto s = open_session();
  auto key = find_key(s, label, CKO_PRIVATE_KEY);
  must(sign_once(s, key, 0, 1), "parent sign");
  pid_t pid = fork();
  if (pid == 0) {
    CK_RV before = sign_once(s, key, 0, 2);
    CK_RV init = p11->C_Initialize(nullptr);
    auto s2 = open_session();
    auto key2 = find_key(s2, label, CKO_PRIVATE_KEY);
    CK_RV after = sign_once(s2, key2, 0, 3);
    std::printf("child_before_init=0x%lx\nchild_init=0x%lx\nchild_after_init=0x%lx\n", before, init, after);
    std::fflush(stdout);
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  std::printf("parent_after_fork=0x%lx\n", sign_once(s, key, 0, 4));
  p11->C_Finalize(nullptr);
  return 0;
}

int gcm(const std::string& label) {
  must(p11->C_Initialize(nullptr), "C_Initialize");
  auto s = open_session();
  auto key = find_key(s, label, CKO_SECRET_KEY);
  CK_BYTE iv[12] = {};
  CK_BYTE aad[] = "header";
  CK_GCM_PARAMS p{iv, sizeof iv, 96, aad, sizeof aad - 1, 128};
  CK_MECHANISM m{CKM_AES_GCM, &p, sizeof p};
  std::string msg = "attack at dawn";
  must(p11->C_EncryptInit(s, &m, key), "C_EncryptInit");
  CK_BYTE ct[256];
  CK_ULONG ct_len = sizeof ct;
  must(p11->C_Encrypt(s, reinterpret_cast<CK_BYTE*>(msg.data()), msg.size(), ct, &ct_len), "C_Encrypt");
  bool nonce_set = false;
  for (auto b : iv) nonce_set |= b != 0;
  must(p11->C_DecryptInit(s, &m, key), "C_DecryptInit");
  CK_BYTE pt[256];
  CK_ULONG pt_len = sizeof pt;
  must(p11->C_Decrypt(s, ct, ct_len, pt, &pt_len), "C_Decrypt");
  std::printf("ciphertext_len=%lu\nnonce_returned=%d\nround_trip=%d\n", ct_len, nonce_set,
              std::string(reinterpret_cast<char*>(pt), pt_len) == msg);
  ct[0] ^= 1;
  must(p11->C_DecryptInit(s, &m, key), "C_DecryptInit");
  pt_len = sizeof pt;
  std::printf("tampered=0x%lx\n", p11->C_Decrypt(s, ct, ct_len, pt, &pt_len));
  CK_BYTE own_iv[12] = {1, 2, 3};
  CK_GCM_PARAMS q{own_iv, sizeof own_iv, 96, nullptr, 0, 128};
  CK_MECHANISM mq{CKM_AES_GCM, &q, sizeof q};
  std::printf("caller_iv=0x%lx\n", p11->C_EncryptInit(s, &mq, key));
  CK_BYTE zero[12] = {};
  CK_GCM_PARAMS r{zero, sizeof zero, 96, nullptr, 0, 96};
  CK_MECHANISM mr{CKM_AES_GCM, &r, sizeof r};
  std::printf("short_tag=0x%lx\n", p11->C_EncryptInit(s, &mr, key));
  p11->C_Finalize(nullptr);
  return 0;
}

std::mutex app_mutex;
std::atomic<int> app_locks{0};

int mutexes(const std::string& label) {
  CK_C_INITIALIZE_ARGS args{};
  args.CreateMutex = [](void** m) -> CK_RV { *m = &app_mutex; return CKR_OK; };
  args.DestroyMutex = [](void*) -> CK_RV { return CKR_OK; };
  args.LockMutex = [](void* m) -> CK_RV { static_cast<std::mutex*>(m)->lock(); ++app_locks; return CKR_OK; };
  args.UnlockMutex = [](void* m) -> CK_RV { static_cast<std::mutex*>(m)->unlock(); return CKR_OK; };
  must(p11->C_Initialize(&args), "C_Initialize");
  auto s = open_session();
  auto key = find_key(s, label, CKO_PRIVATE_KEY);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      CK_SESSION_HANDLE mine = open_session();
      for (int i = 0; i < 50; ++i)
        if (sign_once(mine, key, 0, t * 100 + i) != CKR_OK) ++failures;
    });
  for (auto& th : threads) th.join();
  p11->C_Finalize(nullptr);
  CK_C_INITIALIZE_ARGS half{};
  half.CreateMutex = args.CreateMutex;
  std::printf("app_locks=%d\nthread_failures=%d\nhalf_callbacks=0x%lx\n", app_locks.load(), failures.load(),
              p11->C_Initialize(&half));
  return 0;
}

int one_sign(const std::string& label) {
  auto t0 = std::chrono::steady_clock::now();
  CK_RV rv = p11->C_Initialize(nullptr);
  CK_SESSION_HANDLE s = 0;
  if (rv == CKR_OK) rv = p11->C_OpenSession(0, CKF_SERIAL_SESSION, nullptr, nullptr, &s);
  CK_OBJECT_HANDLE key = 0;
  if (rv == CKR_OK) {
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_LABEL, const_cast<char*>(label.data()), label.size()}};
    CK_ULONG n = 0;
    rv = p11->C_FindObjectsInit(s, t, 2);
    if (rv == CKR_OK) rv = p11->C_FindObjects(s, &key, 1, &n);
    if (rv == CKR_OK) p11->C_FindObjectsFinal(s);
    if (rv == CKR_OK && n == 0) rv = CKR_KEY_HANDLE_INVALID;
  }
  if (rv == CKR_OK) rv = sign_once(s, key, 0, 0);
  std::printf("rv=0x%lx\nms=%.0f\n", rv,
              std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  return 0;
}

// Multi-part signing gives a signature the single-part verify accepts (and the other way), the
// two-call length convention works, and a short buffer keeps the operation.
int multipart(const std::string& label) {
  must(p11->C_Initialize(nullptr), "C_Initialize");
  auto s = open_session();
  auto key = find_key(s, label, CKO_PRIVATE_KEY);
  auto pub = find_key(s, label, CKO_PUBLIC_KEY);
  CK_MECHANISM m{CKM_ECDSA_SHA256, nullptr, 0};
  std::string parts[] = {"the seed's ", "users did not ", "speak HTTP"};
  std::string whole = parts[0] + parts[1] + parts[2];
  must(p11->C_SignInit(s, &m, key), "C_SignInit");
  for (auto& p : parts) must(p11->C_SignUpdate(s, reinterpret_cast<CK_BYTE*>(p.data()), p.size()), "C_SignUpdate");
  CK_ULONG len = 0;
  must(p11->C_SignFinal(s, nullptr, &len), "C_SignFinal (length)");
  CK_BYTE small[8];
  CK_ULONG small_len = sizeof small;
  CK_RV too_small = p11->C_SignFinal(s, small, &small_len);
  CK_BYTE sig[128];
  CK_ULONG sig_len = sizeof sig;
  must(p11->C_SignFinal(s, sig, &sig_len), "C_SignFinal");
  must(p11->C_VerifyInit(s, &m, pub), "C_VerifyInit");
  CK_RV single = p11->C_Verify(s, reinterpret_cast<CK_BYTE*>(whole.data()), whole.size(), sig, sig_len);
  must(p11->C_VerifyInit(s, &m, pub), "C_VerifyInit");
  for (auto& p : parts) must(p11->C_VerifyUpdate(s, reinterpret_cast<CK_BYTE*>(p.data()), p.size()), "C_VerifyUpdate");
  CK_RV multi = p11->C_VerifyFinal(s, sig, sig_len);
  sig[5] ^= 1;
  must(p11->C_VerifyInit(s, &m, pub), "C_VerifyInit");
  CK_RV bad = p11->C_Verify(s, reinterpret_cast<CK_BYTE*>(whole.data()), whole.size(), sig, sig_len);
  CK_RV after = p11->C_SignFinal(s, sig, &sig_len);  // the operation ended with the signature
  std::printf("length=%lu\ntoo_small=0x%lx\nsmall_len=%lu\nsig_len=%lu\nverify_single=0x%lx\nverify_multi=0x%lx\n"
              "verify_bad=0x%lx\nsign_after_final=0x%lx\n", len, too_small, small_len, sig_len, single, multi, bad, after);
  p11->C_Finalize(nullptr);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) { std::fprintf(stderr, "usage: p11_app MODULE SCENARIO LABEL ...\n"); return 2; }
  load(argv[1]);
  std::string scenario = argv[2], label = argv[3];
  if (scenario == "sign-loop" && argc == 6) return sign_loop(label, argv[4], argv[5]);
  if (scenario == "leak" && argc == 6) return leak(label, std::stoi(argv[4]), std::stoi(argv[5]));
  if (scenario == "fork") return fork_rules(label);
  if (scenario == "gcm") return gcm(label);
  if (scenario == "mutexes") return mutexes(label);
  if (scenario == "rv") return one_sign(label);
  if (scenario == "multipart") return multipart(label);
  std::fprintf(stderr, "unknown scenario %s\n", scenario.c_str());
  return 2;
}
