using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace ClipSharp.Tests.Hub;

/// <summary>
/// A small HTTP/1.1 server on 127.0.0.1 (port chosen by the OS) that serves files under the hub's
/// <c>/{repo}/resolve/{revision}/{file}</c> paths. With <see cref="HubHeaders"/> it answers like the hub (X-Repo-Commit,
/// ETag = git SHA-1 or LFS SHA-256, X-Error-Code on 404); with <see cref="RedirectLfs"/> it sends large files through a
/// 302 to <c>/cdn/{sha256}</c> with X-Linked-Etag/X-Linked-Size, as the hub redirects to its CDN. Without either it is a
/// plain static file server (no ETag, no commit). It honours <c>Range: bytes=N-</c>, can cut bodies short, answer fixed
/// statuses, and act as an HTTP forward proxy (absolute request targets). Every request is logged.
/// </summary>
internal sealed class LoopbackHub : IDisposable
{
    public sealed record Request(string Method, string Path, string? Host, IReadOnlyDictionary<string, string> Headers);

    sealed record Entry(byte[] Data, string Sha256, string GitSha1, bool Lfs);

    readonly TcpListener _listener;
    readonly CancellationTokenSource _stop = new();
    readonly ConcurrentDictionary<string, Entry> _files = new(StringComparer.Ordinal);
    readonly ConcurrentDictionary<string, string> _commits = new(StringComparer.Ordinal);
    readonly List<Request> _log = [];

    public LoopbackHub()
    {
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _ = AcceptLoop();
    }

    public int Port { get; }
    public string Endpoint => $"http://127.0.0.1:{Port}";

    /// <summary>Answer like the hub: commits, ETags, error codes.</summary>
    public bool HubHeaders { get; set; } = true;

    /// <summary>Send LFS files (the .safetensors/.bin/.pt ones) through a 302 to /cdn/{sha256}.</summary>
    public bool RedirectLfs { get; set; }

    /// <summary>Ignore Range headers (always answer 200 with the whole body).</summary>
    public bool IgnoreRange { get; set; }

    /// <summary>Per request path (as logged): how many GETs to cut, and after how many body bytes.</summary>
    public ConcurrentDictionary<string, (int Times, int AfterBytes)> Cut { get; } = new();

    /// <summary>Per request path: statuses to answer, one per request, before serving normally.</summary>
    public ConcurrentDictionary<string, Queue<int>> Statuses { get; } = new();

    /// <summary>Per repository: a status answered to every request for it (401 for a gated repo).</summary>
    public ConcurrentDictionary<string, int> RepoStatus { get; } = new();

    /// <summary>Per request path: the SHA-256 the hub headers claim instead of the real one.</summary>
    public ConcurrentDictionary<string, string> ClaimedSha256 { get; } = new();

    public IReadOnlyList<Request> Log { get { lock (_log) return _log.ToList(); } }

    public int RequestCount { get { lock (_log) return _log.Count; } }

    public string CommitOf(string repo) => _commits.GetOrAdd(repo, r => Convert.ToHexString(SHA1.HashData(Encoding.UTF8.GetBytes("commit of " + r))).ToLowerInvariant());

    public static string ResolvePath(string repo, string file, string revision = "main") => $"/{repo}/resolve/{revision}/{file}";

    public void Add(string repo, string file, byte[] data, string revision = "main")
    {
        bool lfs = file.EndsWith(".safetensors", StringComparison.Ordinal) || file.EndsWith(".bin", StringComparison.Ordinal) || file.EndsWith(".pt", StringComparison.Ordinal);
        var header = Encoding.ASCII.GetBytes($"blob {data.Length}\0");
        string gitSha1 = Convert.ToHexString(SHA1.HashData([.. header, .. data])).ToLowerInvariant();
        var entry = new Entry(data, Sha256(data), gitSha1, lfs);
        _files[ResolvePath(repo, file, revision)] = entry;
        _files["/cdn/" + entry.Sha256] = entry;
    }

    /// <summary>Serves bytes at an arbitrary path (a release URL).</summary>
    public void AddRaw(string path, byte[] data) => _files[path] = new Entry(data, Sha256(data), "", true);

    public static string Sha256(byte[] data) => Convert.ToHexString(SHA256.HashData(data)).ToLowerInvariant();

    async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try { client = await _listener.AcceptTcpClientAsync(_stop.Token); }
            catch { return; }
            _ = Task.Run(async () =>
            {
                using (client)
                {
                    try { await Handle(client.GetStream()); }
                    catch (IOException) { }
                    catch (SocketException) { }
                }
            });
        }
    }

    async Task Handle(NetworkStream stream)
    {
        var head = new StringBuilder();
        var one = new byte[1];
        while (!head.ToString().EndsWith("\r\n\r\n", StringComparison.Ordinal))
        {
            if (await stream.ReadAsync(one) == 0) return;
            head.Append((char)one[0]);
        }
        var lines = head.ToString().Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
        var parts = lines[0].Split(' ');
        string method = parts[0], target = parts[1];
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var l in lines.Skip(1))
        {
            int c = l.IndexOf(':');
            if (c > 0) headers[l[..c].Trim()] = l[(c + 1)..].Trim();
        }
        string? host = headers.GetValueOrDefault("Host");
        if (target.StartsWith("http://", StringComparison.Ordinal))
        {
            // Forward-proxy form: the client named the origin in the request line.
            var u = new Uri(target);
            host = u.Authority;
            target = u.PathAndQuery;
        }
        string path = Uri.UnescapeDataString(target);
        lock (_log) _log.Add(new Request(method, path, host, headers));

        if (Statuses.TryGetValue(path, out var q))
        {
            int? scripted = null;
            lock (q) if (q.Count > 0) scripted = q.Dequeue();
            if (scripted is int s) { await Write(stream, s, [], Array.Empty<byte>()); return; }
        }
        string? repo = RepoOf(path);
        if (repo is not null && RepoStatus.TryGetValue(repo, out var repoStatus))
        {
            await Write(stream, repoStatus, HubHeaders ? [("X-Error-Code", "GatedRepo")] : [], Encoding.ASCII.GetBytes("access to this repository is restricted"));
            return;
        }
        if (!_files.TryGetValue(path, out var entry))
        {
            var h = new List<(string, string)>();
            if (HubHeaders && repo is not null)
            {
                bool repoExists = _files.Keys.Any(k => RepoOf(k) == repo);
                h.Add(("X-Error-Code", repoExists ? "EntryNotFound" : "RepoNotFound"));
                if (repoExists) h.Add(("X-Repo-Commit", CommitOf(repo)));
            }
            await Write(stream, 404, h, Encoding.ASCII.GetBytes("not found"));
            return;
        }

        bool isResolve = repo is not null;
        var extra = new List<(string, string)>();
        string sha = ClaimedSha256.GetValueOrDefault(path) ?? entry.Sha256;
        if (HubHeaders && isResolve)
        {
            extra.Add(("X-Repo-Commit", CommitOf(repo!)));
            if (entry.Lfs && RedirectLfs)
            {
                extra.Add(("X-Linked-Etag", $"\"{sha}\""));
                extra.Add(("X-Linked-Size", entry.Data.Length.ToString()));
                extra.Add(("Location", "/cdn/" + entry.Sha256));
                await Write(stream, 302, extra, Array.Empty<byte>());
                return;
            }
            extra.Add(("ETag", $"\"{(entry.Lfs ? sha : entry.GitSha1)}\""));
        }
        else if (RedirectLfs && isResolve && entry.Lfs)
        {
            await Write(stream, 302, [("Location", "/cdn/" + entry.Sha256)], Array.Empty<byte>());
            return;
        }

        long start = 0;
        if (!IgnoreRange && method == "GET" && headers.TryGetValue("Range", out var range) && range.StartsWith("bytes=", StringComparison.Ordinal) && range.EndsWith('-'))
        {
            start = long.Parse(range["bytes=".Length..^1]);
            if (start >= entry.Data.Length)
            {
                await Write(stream, 416, [("Content-Range", $"bytes */{entry.Data.Length}")], Array.Empty<byte>());
                return;
            }
        }
        var body = entry.Data.AsMemory((int)start);
        int status = start > 0 ? 206 : 200;
        if (start > 0) extra.Add(("Content-Range", $"bytes {start}-{entry.Data.Length - 1}/{entry.Data.Length}"));
        if (method == "HEAD") { await Write(stream, status, extra, Array.Empty<byte>(), body.Length); return; }
        if (Cut.TryGetValue(path, out var cut) && cut.Times > 0)
        {
            Cut[path] = (cut.Times - 1, cut.AfterBytes);
            await Write(stream, status, extra, body[..Math.Min(cut.AfterBytes, body.Length)], body.Length);
            return; // the connection closes with the body short of its Content-Length
        }
        await Write(stream, status, extra, body);
    }

    static string? RepoOf(string path)
    {
        int i = path.IndexOf("/resolve/", StringComparison.Ordinal);
        return i > 1 ? path[1..i] : null;
    }

    static async Task Write(NetworkStream s, int status, IEnumerable<(string, string)> headers, ReadOnlyMemory<byte> body, long? contentLength = null)
    {
        var sb = new StringBuilder($"HTTP/1.1 {status} {Reason(status)}\r\n");
        foreach (var (k, v) in headers) sb.Append($"{k}: {v}\r\n");
        sb.Append($"Content-Length: {contentLength ?? body.Length}\r\nConnection: close\r\n\r\n");
        await s.WriteAsync(Encoding.ASCII.GetBytes(sb.ToString()));
        await s.WriteAsync(body);
        await s.FlushAsync();
    }

    static string Reason(int status) => status switch
    {
        200 => "OK", 206 => "Partial Content", 302 => "Found", 401 => "Unauthorized", 403 => "Forbidden", 404 => "Not Found",
        416 => "Range Not Satisfiable", 500 => "Internal Server Error", 503 => "Service Unavailable", _ => "Status",
    };

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Stop();
    }
}
