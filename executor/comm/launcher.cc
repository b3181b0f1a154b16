// The launch environment and the local launcher (see launcher.h): fork/exec of the ranks, their
// output, and their supervision through one poll() loop fed by a self-pipe for signals.
#include "executor/comm/launcher.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <map>

#include "executor/log/log.h"

extern char** environ;

namespace shardplan {
namespace {

using Clock = std::chrono::steady_clock;

const char* env_or_null(const char* name) {
  const char* value = std::getenv(name);
  return value;
}

// A whole decimal integer in [min, max], or a LaunchError naming the variable.
int parse_env_int(const char* name, const char* text, long min, long max) {
  const std::string value = text;
  bool digits = !value.empty();
  for (size_t i = 0; i < value.size(); ++i) {
    const bool sign = i == 0 && value[i] == '-' && value.size() > 1;
    if (!sign && (value[i] < '0' || value[i] > '9')) digits = false;
  }
  if (!digits) throw LaunchError(std::string(name) + "='" + value + "' is not an integer");
  errno = 0;
  const long number = std::strtol(value.c_str(), nullptr, 10);
  if (errno == ERANGE || number < min || number > max) {
    throw LaunchError(std::string(name) + "=" + value + " is out of range [" + std::to_string(min) + ", " +
                      std::to_string(max) + "]");
  }
  return static_cast<int>(number);
}

std::string signal_text(int sig) {
  static const std::map<int, const char*> names = {
      {SIGHUP, "SIGHUP"},   {SIGINT, "SIGINT"},   {SIGQUIT, "SIGQUIT"}, {SIGILL, "SIGILL"},   {SIGTRAP, "SIGTRAP"},
      {SIGABRT, "SIGABRT"}, {SIGBUS, "SIGBUS"},   {SIGFPE, "SIGFPE"},   {SIGKILL, "SIGKILL"}, {SIGSEGV, "SIGSEGV"},
      {SIGPIPE, "SIGPIPE"}, {SIGALRM, "SIGALRM"}, {SIGTERM, "SIGTERM"}, {SIGUSR1, "SIGUSR1"}, {SIGUSR2, "SIGUSR2"}};
  const auto found = names.find(sig);
  return "signal " + std::to_string(sig) + (found != names.end() ? std::string(", ") + found->second : "");
}

// The self-pipe: the signal handler writes the signal number, the poll() loop reads it.
int g_signal_pipe_write = -1;

void on_signal(int sig) {
  const int saved = errno;
  const unsigned char byte = static_cast<unsigned char>(sig);
  if (g_signal_pipe_write >= 0) {
    [[maybe_unused]] ssize_t ignored = ::write(g_signal_pipe_write, &byte, 1);
  }
  errno = saved;
}

void write_all(int fd, const std::string& text) {
  const char* data = text.data();
  size_t remaining = text.size();
  while (remaining > 0) {
    const ssize_t written = ::write(fd, data, remaining);
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) return;
    data += written;
    remaining -= static_cast<size_t>(written);
  }
}

// One rank being supervised.
struct Child {
  int rank = 0;
  pid_t pid = -1;
  bool running = false;
  int status = 0;
  std::vector<int> fds;                // pipes still open: stderr, and stdout for ranks > 0
  std::map<int, std::string> pending;  // fd -> text after the last newline
};

// Forwards complete lines from `chunk` as "[rank N] line" to stderr.
void forward_lines(Child& child, int fd, const char* chunk, size_t size) {
  std::string& pending = child.pending[fd];
  pending.append(chunk, size);
  std::string out;
  size_t start = 0;
  for (size_t newline = pending.find('\n'); newline != std::string::npos; newline = pending.find('\n', start)) {
    out += "[rank " + std::to_string(child.rank) + "] ";
    out.append(pending, start, newline + 1 - start);
    start = newline + 1;
  }
  pending.erase(0, start);
  if (!out.empty()) write_all(STDERR_FILENO, out);
}

void flush_pending(Child& child, int fd) {
  std::string& pending = child.pending[fd];
  if (!pending.empty()) write_all(STDERR_FILENO, "[rank " + std::to_string(child.rank) + "] " + pending + "\n");
  pending.clear();
}

// Restores the signal dispositions and closes the self-pipe, whatever way run_local_ranks ends.
class SignalRouting {
 public:
  SignalRouting() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
      throw LaunchError(std::string("cannot create a pipe: ") + std::strerror(errno));
    }
    read_fd_ = fds[0];
    g_signal_pipe_write = fds[1];
    struct sigaction action {};
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    for (int sig : {SIGCHLD, SIGINT, SIGTERM, SIGHUP}) {
      // NOTE: a signal the process was started ignoring stays ignored (nohup's SIGHUP, a
      // background job's SIGINT), as shells and coreutils leave them.
      struct sigaction current {};
      sigaction(sig, nullptr, &current);
      if (sig != SIGCHLD && current.sa_handler == SIG_IGN) continue;
      sigaction(sig, &action, &saved_[sig]);
    }
  }
  ~SignalRouting() {
    for (auto& entry : saved_) sigaction(entry.first, &entry.second, nullptr);
    ::close(read_fd_);
    ::close(g_signal_pipe_write);
    g_signal_pipe_write = -1;
  }
  SignalRouting(const SignalRouting&) = delete;
  SignalRouting& operator=(const SignalRouting&) = delete;
  int read_fd() const { return read_fd_; }

 private:
  int read_fd_ = -1;
  std::map<int, struct sigaction> saved_;
};

std::vector<std::string> rank_environment(int rank, int world_size, const std::string& addr, int port) {
  std::map<std::string, std::string> ours = {{"RANK", std::to_string(rank)},
                                             {"WORLD_SIZE", std::to_string(world_size)},
                                             {"LOCAL_RANK", std::to_string(rank)},
                                             {"LOCAL_WORLD_SIZE", std::to_string(world_size)},
                                             {"MASTER_ADDR", addr},
                                             {"MASTER_PORT", std::to_string(port)}};
  for (const auto& forced : forced_rank_environment()) ours[forced.first] = forced.second;
  std::vector<std::string> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    const std::string text = *entry;
    const std::string name = text.substr(0, text.find('='));
    // NOTE: the ranks rendezvous on our own store: a torchrun agent's store is not theirs.
    if (ours.count(name) > 0 || name == "TORCHELASTIC_USE_AGENT_STORE") continue;
    env.push_back(text);
  }
  for (const auto& entry : ours) env.push_back(entry.first + "=" + entry.second);
  return env;
}

std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  for (std::string& s : strings) pointers.push_back(s.data());
  pointers.push_back(nullptr);
  return pointers;
}

// fork + exec of one rank; the pipes' write ends become its stdout (ranks > 0) and stderr.
void start_child(Child& child, const std::string& executable, std::vector<std::string> args,
                 std::vector<std::string> env) {
  int err_pipe[2] = {-1, -1};
  int out_pipe[2] = {-1, -1};
  if (::pipe2(err_pipe, O_CLOEXEC) != 0 || (child.rank > 0 && ::pipe2(out_pipe, O_CLOEXEC) != 0)) {
    throw LaunchError(std::string("cannot create a pipe: ") + std::strerror(errno));
  }
  // Everything the child needs is built before fork: after it, only async-signal-safe calls.
  std::vector<char*> argv = c_strings(args);
  std::vector<char*> envp = c_strings(env);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw LaunchError(std::string("fork failed: ") + std::strerror(errno));
  if (pid == 0) {
    // A rank must not outlive its launcher (SIGKILL of the launcher leaves no orphans).
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    if (out_pipe[1] >= 0) ::dup2(out_pipe[1], STDOUT_FILENO);
    ::dup2(err_pipe[1], STDERR_FILENO);
    ::execve(executable.c_str(), argv.data(), envp.data());
    const char* reason = std::strerror(errno);
    const char* prefix = "cannot execute ";
    [[maybe_unused]] ssize_t ignored = ::write(STDERR_FILENO, prefix, std::strlen(prefix));
    ignored = ::write(STDERR_FILENO, executable.c_str(), executable.size());
    ignored = ::write(STDERR_FILENO, ": ", 2);
    ignored = ::write(STDERR_FILENO, reason, std::strlen(reason));
    ignored = ::write(STDERR_FILENO, "\n", 1);
    ::_exit(127);
  }
  child.pid = pid;
  child.running = true;
  ::close(err_pipe[1]);
  ::fcntl(err_pipe[0], F_SETFL, O_NONBLOCK);
  child.fds.push_back(err_pipe[0]);
  if (out_pipe[1] >= 0) {
    ::close(out_pipe[1]);
    ::fcntl(out_pipe[0], F_SETFL, O_NONBLOCK);
    child.fds.push_back(out_pipe[0]);
  }
}

void signal_running(std::vector<Child>& children, int sig) {
  for (Child& child : children) {
    if (child.running) ::kill(child.pid, sig);
  }
}

}  // namespace

std::optional<LaunchEnv> launch_env_from_environment() {
  const char* rank = env_or_null("RANK");
  const char* world = env_or_null("WORLD_SIZE");
  if (rank == nullptr && world == nullptr) return std::nullopt;
  if (rank == nullptr) throw LaunchError("WORLD_SIZE is set but RANK is not");
  if (world == nullptr) throw LaunchError("RANK is set but WORLD_SIZE is not");
  LaunchEnv env;
  env.world_size = parse_env_int("WORLD_SIZE", world, 1, INT_MAX);
  env.rank = parse_env_int("RANK", rank, INT_MIN, INT_MAX);
  if (env.rank < 0 || env.rank >= env.world_size) {
    throw LaunchError("RANK=" + std::to_string(env.rank) +
                      " is not in [0, WORLD_SIZE=" + std::to_string(env.world_size) + ")");
  }
  const char* local_rank = env_or_null("LOCAL_RANK");
  env.local_rank = local_rank != nullptr ? parse_env_int("LOCAL_RANK", local_rank, 0, INT_MAX) : env.rank;
  const char* addr = env_or_null("MASTER_ADDR");
  if (addr == nullptr || *addr == '\0') throw LaunchError("MASTER_ADDR is not set (RANK and WORLD_SIZE are)");
  env.master_addr = addr;
  const char* port = env_or_null("MASTER_PORT");
  if (port == nullptr) throw LaunchError("MASTER_PORT is not set (RANK and WORLD_SIZE are)");
  env.master_port = parse_env_int("MASTER_PORT", port, 1, 65535);
  const char* agent_store = env_or_null("TORCHELASTIC_USE_AGENT_STORE");
  env.launcher_hosts_store = agent_store != nullptr && std::string(agent_store) == "True";
  return env;
}

const std::vector<std::pair<std::string, std::string>>& forced_rank_environment() {
  static const std::vector<std::pair<std::string, std::string>> forced = {
      {"NCCL_NVLS_ENABLE", "0"}, {"TORCH_SYMM_MEM_DISABLE_MULTICAST", "1"}, {"NVSHMEM_DISABLE_NVLS", "1"}};
  return forced;
}

void apply_forced_rank_environment() {
  for (const auto& entry : forced_rank_environment()) ::setenv(entry.first.c_str(), entry.second.c_str(), 1);
}

int find_free_port(const std::string& host) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw LaunchError(std::string("socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  if (::inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host.c_str(), &addr.sin_addr) != 1) {
    ::close(fd);
    throw LaunchError("cannot find a free port on '" + host + "': not an IPv4 address");
  }
  socklen_t length = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
    const std::string reason = std::strerror(errno);
    ::close(fd);
    throw LaunchError("cannot find a free port on " + host + ": " + reason);
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

int run_local_ranks(int world_size, const std::vector<std::string>& args, const LocalRanksOptions& options) {
  if (world_size < 1) throw LaunchError("world size must be at least 1, got " + std::to_string(world_size));
  if (args.empty()) throw LaunchError("run_local_ranks needs at least the program name in args");
  const int port = options.master_port != 0 ? options.master_port : find_free_port(options.master_addr);

  SignalRouting signals;
  std::vector<Child> children(static_cast<size_t>(world_size));
  try {
    for (int rank = 0; rank < world_size; ++rank) {
      children[static_cast<size_t>(rank)].rank = rank;
      start_child(children[static_cast<size_t>(rank)], options.executable, args,
                  rank_environment(rank, world_size, options.master_addr, port));
    }
  } catch (...) {
    signal_running(children, SIGKILL);
    for (Child& child : children) {
      if (child.running) ::waitpid(child.pid, nullptr, 0);
      for (int fd : child.fds) ::close(fd);
    }
    throw;
  }
  log_info("started " + std::to_string(world_size) + " local ranks (rendezvous at " + options.master_addr + ":" +
           std::to_string(port) + ")");

  int exit_code = 0;
  bool stopping = false;      // a rank failed, or we were interrupted: the others are being stopped
  bool kill_pending = false;  // SIGKILL the ranks still running at kill_at
  Clock::time_point kill_at{};
  const std::optional<Clock::time_point> run_deadline =
      options.timeout.count() > 0 ? std::optional<Clock::time_point>(Clock::now() + options.timeout) : std::nullopt;
  std::optional<Clock::time_point> drain_until;  // after the last exit, how long to wait for output

  const auto stop_all = [&](int sig) {
    stopping = true;
    signal_running(children, sig);
    kill_pending = true;
    kill_at = Clock::now() + options.kill_grace;
  };

  while (true) {
    // Reap the ranks that exited.
    bool any_running = false;
    for (Child& child : children) {
      if (!child.running) continue;
      int status = 0;
      const pid_t done = ::waitpid(child.pid, &status, WNOHANG);
      if (done != child.pid) {
        any_running = true;
        continue;
      }
      child.running = false;
      child.status = status;
      const bool failed = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
      const std::string how =
          WIFEXITED(status) ? "exit code " + std::to_string(WEXITSTATUS(status)) : signal_text(WTERMSIG(status));
      if (failed && !stopping) {
        log_error("rank " + std::to_string(child.rank) + " failed (" + how + "); stopping the other ranks");
        exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : kExitRunFault;
        stop_all(SIGTERM);
      } else if (stopping) {
        log_info("rank " + std::to_string(child.rank) + " stopped (" + how + ")");
      }
    }
    bool any_output = false;
    for (const Child& child : children) any_output = any_output || !child.fds.empty();
    if (!any_running) {
      if (!any_output) break;
      // NOTE: a rank's own child may still hold its pipes; give the output a moment, not forever.
      if (!drain_until) drain_until = Clock::now() + std::chrono::seconds(2);
      if (Clock::now() >= *drain_until) break;
    }

    const Clock::time_point now = Clock::now();
    if (run_deadline && !stopping && now >= *run_deadline) {
      log_error("the run exceeded its time limit of " + std::to_string(options.timeout.count()) +
                " ms; stopping the ranks");
      exit_code = kExitRunFault;
      stop_all(SIGTERM);
    }
    if (kill_pending && now >= kill_at) {
      signal_running(children, SIGKILL);
      kill_pending = false;
    }

    std::vector<pollfd> polled{{signals.read_fd(), POLLIN, 0}};
    std::vector<Child*> owners{nullptr};
    for (Child& child : children) {
      for (int fd : child.fds) {
        polled.push_back({fd, POLLIN, 0});
        owners.push_back(&child);
      }
    }
    const int ready = ::poll(polled.data(), polled.size(), 200);
    if (ready < 0 && errno != EINTR) throw LaunchError(std::string("poll: ") + std::strerror(errno));
    if (ready <= 0) continue;

    if ((polled[0].revents & POLLIN) != 0) {
      unsigned char sig = 0;
      while (::read(signals.read_fd(), &sig, 1) == 1) {
        const bool interrupt = sig == SIGINT || sig == SIGTERM || sig == SIGHUP;
        if (interrupt && !stopping) {
          log_error(std::string("interrupted (") + signal_text(sig) + "); stopping the ranks");
          exit_code = 128 + sig;
          // NOTE: a hang-up (the terminal closed) stops the ranks as SIGTERM does.
          stop_all(sig == SIGHUP ? SIGTERM : sig);
        } else if (interrupt) {
          signal_running(children, SIGKILL);  // a second interrupt does not wait for the grace period
        }
        // SIGCHLD: the next round reaps.
      }
    }
    char buffer[65536];
    for (size_t i = 1; i < polled.size(); ++i) {
      if ((polled[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      Child& child = *owners[i];
      const int fd = polled[i].fd;
      const ssize_t got = ::read(fd, buffer, sizeof(buffer));
      if (got > 0) {
        forward_lines(child, fd, buffer, static_cast<size_t>(got));
      } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
        flush_pending(child, fd);
        ::close(fd);
        child.fds.erase(std::find(child.fds.begin(), child.fds.end(), fd));
      }
    }
  }
  for (Child& child : children) {
    for (int fd : child.fds) {
      flush_pending(child, fd);
      ::close(fd);
    }
    child.fds.clear();
  }
  return exit_code;
}

}  // namespace shardplan
