using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;

namespace ClipSharp.Hub;

/// <summary>Progress of one file's download.</summary>
/// <param name="File">What is being downloaded (<c>org/name/file</c> or the URL's file name).</param>
/// <param name="BytesDone">Bytes on disk so far, including those of an earlier, interrupted attempt.</param>
/// <param name="TotalBytes">The file's size when the server announced it.</param>
public readonly record struct DownloadProgress(string File, long BytesDone, long? TotalBytes);

/// <summary>
/// HTTP for the hub cache and release URLs: metadata by HEAD (commit, ETag, size, through the hub's redirects), bodies
/// by GET into a <c>.incomplete</c> file resumed with <c>Range</c>, SHA-256 checked when the ETag or the table gives it,
/// moved into place in one rename. Connection errors, cut-off bodies, 5xx and 429 are retried with
/// <see cref="PretrainedOptions.RetryDelay"/>; 401/403/404 fail at once with a message that says what to do.
/// </summary>
internal sealed class HubDownloader : IDisposable
{
    readonly PretrainedOptions _o;
    readonly HttpClient _http;
    readonly Uri _endpoint;
    public HubCache Cache { get; }

    public HubDownloader(PretrainedOptions options)
    {
        _o = options;
        Cache = new HubCache(options.HubCacheDir);
        if (!Uri.TryCreate(options.Endpoint.TrimEnd('/') + "/", UriKind.Absolute, out var ep) || (ep.Scheme != "http" && ep.Scheme != "https"))
            throw new HubException(HubErrorKind.UnknownName, $"HF_ENDPOINT '{options.Endpoint}' is not an http(s) URL");
        _endpoint = ep;
        var handler = new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            UseProxy = true,
            Proxy = new LoopbackDirect(options.Proxy ?? HttpClient.DefaultProxy),
            ConnectTimeout = TimeSpan.FromSeconds(30),
        };
        _http = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
    }

    public void Dispose() => _http.Dispose();

    /// <summary>Loopback (a local mirror, a test server) never goes through a proxy; everything else as the proxy decides.</summary>
    sealed class LoopbackDirect(IWebProxy inner) : IWebProxy
    {
        public ICredentials? Credentials { get => inner.Credentials; set => inner.Credentials = value; }
        public Uri? GetProxy(Uri destination) => inner.GetProxy(destination);
        public bool IsBypassed(Uri host) => host.IsLoopback || inner.IsBypassed(host);
    }

    public Uri ResolveUrl(string repo, string revision, string file) =>
        new(_endpoint, $"{repo}/resolve/{Uri.EscapeDataString(revision)}/{string.Join('/', file.Split('/').Select(Uri.EscapeDataString))}");

    /// <summary>
    /// A file of a hub repository: from the cache when it is there (no request), else downloaded into it. Returns the
    /// snapshot path, or null for an optional file the repository does not have.
    /// </summary>
    public async Task<string?> GetHubFileAsync(string repo, string revision, string file, bool required, IProgress<DownloadProgress>? progress, CancellationToken ct)
    {
        if (Cache.TryGetFile(repo, revision, file) is { } cached) return cached;
        if (!required && Cache.IsKnownMissing(repo, revision, file)) return null;
        string what = $"{repo}/{file}";
        if (_o.Offline)
        {
            if (!required) return null;
            throw new HubException(HubErrorKind.NotCached,
                $"{what} (revision {revision}) is not in the Hugging Face cache {Cache.RepoDir(repo)} and HF_HUB_OFFLINE is set; download it once online (clip models download)");
        }

        var url = ResolveUrl(repo, revision, file);
        var meta = await RetryAsync(what, attempt => HeadAsync(url, ct), ct).ConfigureAwait(false);
        string commit = meta.Commit is { } c && HubCache.IsCommitHash(c) ? c : HubCache.SnapshotNameFor(revision);
        if (meta.Status == HttpStatusCode.NotFound)
        {
            if (!required && meta.ErrorCode is null or "EntryNotFound")
            {
                Cache.MarkMissing(repo, revision, commit, file);
                return null;
            }
            throw NotFound(repo, revision, file, meta.ErrorCode, url);
        }
        if (meta.Status is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden) throw Denied(repo, meta.Status, url);

        string? blob = meta.ETag is { } e && HubCache.IsBlobName(e) ? e : null;
        string? sha256 = blob is { Length: 64 } ? blob : null;
        if (blob is not null && File.Exists(Cache.BlobPath(repo, blob)))
        {
            Cache.WriteRef(repo, revision, commit);
            return Cache.LinkSnapshot(repo, commit, file, blob);
        }

        var blobsDir = Path.Combine(Cache.RepoDir(repo), "blobs");
        Directory.CreateDirectory(blobsDir);
        // Python's huggingface_hub resumes <etag>.incomplete too; without a usable ETag the partial file is keyed by the URL.
        string incomplete = Path.Combine(blobsDir, (blob ?? "url-" + Hex(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(url.AbsoluteUri)))) + ".incomplete");
        using var guard = blob is null ? null : await LockAsync(Cache.LockPath(repo, blob), what, ct).ConfigureAwait(false);
        if (blob is not null && File.Exists(Cache.BlobPath(repo, blob)))
        {
            Cache.WriteRef(repo, revision, commit);
            return Cache.LinkSnapshot(repo, commit, file, blob);
        }

        var (hash, _) = await DownloadAsync(url, incomplete, meta.Size, sha256, meta.Validator, what, progress, ct).ConfigureAwait(false);
        blob ??= hash;
        var blobPath = Cache.BlobPath(repo, blob);
        if (File.Exists(blobPath)) File.Delete(incomplete);
        else File.Move(incomplete, blobPath);
        Cache.WriteRef(repo, revision, commit);
        return Cache.LinkSnapshot(repo, commit, file, blob);
    }

    /// <summary>
    /// A file from a direct URL into <paramref name="target"/>, checked against <paramref name="sha256"/> (all of it or a
    /// leading part) when given; the partial file is <c>target.incomplete</c>, the finished one appears in one rename.
    /// </summary>
    public async Task DownloadUrlAsync(Uri url, string target, string? sha256, IProgress<DownloadProgress>? progress, CancellationToken ct)
    {
        string what = Path.GetFileName(target);
        if (_o.Offline)
            throw new HubException(HubErrorKind.NotCached, $"{target} is not cached and HF_HUB_OFFLINE is set; download it once online (clip models download)");
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(target))!);
        string incomplete = target + ".incomplete";
        using var guard = await LockAsync(Path.Combine(_o.ClipSharpCacheDir, "locks", what + ".lock"), what, ct).ConfigureAwait(false);
        await DownloadAsync(url, incomplete, null, sha256, null, what, progress, ct).ConfigureAwait(false);
        File.Move(incomplete, target, overwrite: true);
    }

    /// <summary>The size a hub file would have (HEAD only, nothing is downloaded); null when unknown or absent.</summary>
    public async Task<long?> RemoteSizeAsync(string repo, string revision, string file, CancellationToken ct)
    {
        var meta = await RetryAsync($"{repo}/{file}", _ => HeadAsync(ResolveUrl(repo, revision, file), ct), ct).ConfigureAwait(false);
        return meta.Status == HttpStatusCode.OK ? meta.Size : null;
    }

    readonly record struct Metadata(HttpStatusCode Status, string? Commit, string? ETag, long? Size, string? Validator, string? ErrorCode);

    /// <summary>
    /// HEAD through the redirects: <c>X-Repo-Commit</c>, <c>X-Linked-Etag</c> and <c>X-Linked-Size</c> are the hub's
    /// (it sends them with the redirect to its CDN, where following stops); a plain file server gives at most <c>ETag</c>
    /// and <c>Content-Length</c>. A server that refuses HEAD yields what the GET will tell.
    /// </summary>
    async Task<Metadata> HeadAsync(Uri url, CancellationToken ct)
    {
        string? commit = null, linkedEtag = null, errorCode = null;
        long? linkedSize = null;
        for (int hop = 0; hop < MaxRedirects; hop++)
        {
            using var req = NewRequest(HttpMethod.Head, url);
            using var resp = await _http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
            commit ??= Header(resp, "X-Repo-Commit");
            linkedEtag ??= Header(resp, "X-Linked-Etag");
            linkedSize ??= long.TryParse(Header(resp, "X-Linked-Size"), out var ls) ? ls : null;
            errorCode ??= Header(resp, "X-Error-Code");
            int code = (int)resp.StatusCode;
            if (IsRedirect(code) && resp.Headers.Location is { } loc)
            {
                if (linkedEtag is not null && linkedSize is not null) return new(HttpStatusCode.OK, commit, NormalizeEtag(linkedEtag), linkedSize, null, null);
                url = new Uri(url, loc);
                continue;
            }
            if (code is 405 or 501) return new(HttpStatusCode.OK, commit, linkedEtag is null ? null : NormalizeEtag(linkedEtag), linkedSize, null, null);
            if (code == 429 || code >= 500) throw new TransientStatusException(resp.StatusCode, RetryAfter(resp));
            if (code is 404 or 401 or 403) return new(resp.StatusCode, commit, null, null, null, errorCode);
            if (code != 200) throw new HubException(HubErrorKind.Network, $"{url}: unexpected HTTP {code} {resp.ReasonPhrase}");
            var raw = resp.Headers.ETag;
            string? etag = linkedEtag ?? raw?.Tag;
            return new(HttpStatusCode.OK, commit, etag is null ? null : NormalizeEtag(etag), linkedSize ?? resp.Content.Headers.ContentLength,
                raw is { IsWeak: false } ? raw.Tag : null, null);
        }
        throw new HubException(HubErrorKind.Network, $"{url}: more than {MaxRedirects} redirects");
    }

    const int MaxRedirects = 10;

    static bool IsRedirect(int code) => code is 301 or 302 or 303 or 307 or 308;

    static string? Header(HttpResponseMessage r, string name) =>
        r.Headers.TryGetValues(name, out var v) ? v.FirstOrDefault() : null;

    /// <summary>The hub's normalisation: weak marker and quotes stripped.</summary>
    static string NormalizeEtag(string etag)
    {
        var s = etag.Trim();
        if (s.StartsWith("W/", StringComparison.Ordinal)) s = s[2..];
        return s.Trim('"');
    }

    HttpRequestMessage NewRequest(HttpMethod method, Uri url)
    {
        var req = new HttpRequestMessage(method, url);
        req.Headers.UserAgent.Add(new ProductInfoHeaderValue("clipsharp", typeof(HubDownloader).Assembly.GetName().Version?.ToString(3) ?? "0"));
        req.Headers.AcceptEncoding.Add(new StringWithQualityHeaderValue("identity"));
        // The token is for the hub alone: a redirect to a CDN or any other host does not get it.
        if (_o.Token is { Length: > 0 } token && IsHub(url))
            req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return req;
    }

    bool IsHub(Uri url) => Uri.Compare(url, _endpoint, UriComponents.SchemeAndServer, UriFormat.Unescaped, StringComparison.OrdinalIgnoreCase) == 0;

    /// <summary>GET following redirects; the response returned is not a redirect.</summary>
    async Task<HttpResponseMessage> GetAsync(Uri url, long offset, string? validator, CancellationToken ct)
    {
        for (int hop = 0; hop < MaxRedirects; hop++)
        {
            var req = NewRequest(HttpMethod.Get, url);
            if (offset > 0)
            {
                req.Headers.Range = new RangeHeaderValue(offset, null);
                if (validator is not null) req.Headers.IfRange = new RangeConditionHeaderValue(new EntityTagHeaderValue(validator));
            }
            HttpResponseMessage resp;
            try { resp = await _http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false); }
            finally { req.Dispose(); }
            if (IsRedirect((int)resp.StatusCode) && resp.Headers.Location is { } loc)
            {
                url = new Uri(url, loc);
                resp.Dispose();
                continue;
            }
            return resp;
        }
        throw new HubException(HubErrorKind.Network, $"{url}: more than {MaxRedirects} redirects");
    }

    /// <summary>
    /// Downloads into <paramref name="incomplete"/>, continuing what is already there, until the announced size is
    /// reached; returns the SHA-256 (hex) and size. A wrong SHA-256 deletes the partial file and throws.
    /// </summary>
    async Task<(string Sha256, long Size)> DownloadAsync(Uri url, string incomplete, long? expectedSize, string? expectedSha256, string? validator,
        string what, IProgress<DownloadProgress>? progress, CancellationToken ct)
    {
        int failures = 0;
        long best = -1;
        Exception? last = null;
        var buffer = new byte[1 << 20];
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            long offset = File.Exists(incomplete) ? new FileInfo(incomplete).Length : 0;
            if (expectedSize is long full && offset > full) { File.Delete(incomplete); offset = 0; }
            try
            {
                using var resp = await GetAsync(url, offset, validator, ct).ConfigureAwait(false);
                int code = (int)resp.StatusCode;
                if (code == 416 && expectedSize is long size416 && offset == size416)
                    return Finish(incomplete, expectedSha256, what);
                if (code == 416) { File.Delete(incomplete); throw new TransientStatusException(resp.StatusCode, null); }
                if (code == 429 || code >= 500) throw new TransientStatusException(resp.StatusCode, RetryAfter(resp));
                if (code == 404) throw new HubException(HubErrorKind.NotFound, $"{what}: not found (HTTP 404 from {url})");
                if (code is 401 or 403) throw new HubException(HubErrorKind.AccessDenied, $"{what}: access denied (HTTP {code} from {url}){(IsHub(url) ? TokenHint() : "")}");
                if (code is not (200 or 206)) throw new HubException(HubErrorKind.Network, $"{what}: unexpected HTTP {code} {resp.ReasonPhrase} from {url}");

                long start = 0;
                long? total = resp.Content.Headers.ContentLength;
                if (code == 206)
                {
                    var range = resp.Content.Headers.ContentRange;
                    if (range?.From != offset) throw new TransientStatusException(resp.StatusCode, null, restart: true);
                    start = offset;
                    total = range.Length;
                }
                long? announced = expectedSize ?? total;

                var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                await using (var file = new FileStream(incomplete, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1 << 16, useAsync: true))
                {
                    file.SetLength(start);
                    // The hash covers the whole file, so a resumed download rereads what the earlier attempts wrote.
                    file.Position = 0;
                    int n;
                    while (file.Position < start && (n = await file.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, start - file.Position)), ct).ConfigureAwait(false)) > 0)
                        hash.AppendData(buffer, 0, n);
                    long done = start;
                    progress?.Report(new DownloadProgress(what, done, announced));
                    await using var body = await resp.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
                    try
                    {
                        while ((n = await body.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
                        {
                            await file.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                            hash.AppendData(buffer, 0, n);
                            done += n;
                            progress?.Report(new DownloadProgress(what, done, announced));
                        }
                    }
                    catch (Exception cut) when (cut is IOException or HttpRequestException && announced is long want0 && done < want0 && !ct.IsCancellationRequested)
                    {
                        // The connection ended (or broke) before Content-Length bytes arrived.
                        throw new TruncatedException(done, want0, cut);
                    }
                    finally
                    {
                        await file.FlushAsync(CancellationToken.None).ConfigureAwait(false);
                    }
                    if (announced is long want && done < want)
                        throw new TruncatedException(done, want);
                    if (announced is long max && done > max)
                    {
                        file.Close();
                        File.Delete(incomplete);
                        throw new HubException(HubErrorKind.Network, $"{what}: the server sent {done} bytes where {max} were announced; nothing was kept");
                    }
                }
                return Finish(incomplete, expectedSha256, what, hash);
            }
            catch (Exception e) when (IsTransient(e, ct))
            {
                last = e;
                long now = File.Exists(incomplete) ? new FileInfo(incomplete).Length : 0;
                if (e is TransientStatusException { Restart: true } && File.Exists(incomplete)) File.Delete(incomplete);
                // Attempts count only while nothing new arrives: a slow link that keeps making progress is not a failure.
                if (now > best) { best = now; failures = 1; }
                else failures++;
                if (failures >= _o.MaxAttempts) throw Exhausted(what, url, e, incomplete);
                await Task.Delay(Delay(e, failures), ct).ConfigureAwait(false);
            }
            catch (HttpRequestException e)
            {
                throw new HubException(HubErrorKind.Network, $"{what}: {e.Message} ({url})", e);
            }
        }
    }

    (string, long) Finish(string incomplete, string? expectedSha256, string what, IncrementalHash? hash = null)
    {
        string sha;
        if (hash is not null) sha = Hex(hash.GetHashAndReset());
        else
        {
            using var fs = File.OpenRead(incomplete);
            sha = Hex(SHA256.HashData(fs));
        }
        hash?.Dispose();
        if (expectedSha256 is { Length: > 0 } expected && !sha.StartsWith(expected, StringComparison.OrdinalIgnoreCase))
        {
            File.Delete(incomplete);
            throw new HubException(HubErrorKind.ChecksumMismatch,
                $"{what}: SHA-256 mismatch, expected {expected}{(expected.Length < 64 ? "…" : "")} but the download has {sha}; the file was deleted, nothing was cached");
        }
        return (sha, new FileInfo(incomplete).Length);
    }

    static bool IsTransient(Exception e, CancellationToken ct) => e switch
    {
        HubException => false,
        OperationCanceledException => !ct.IsCancellationRequested, // a stalled connection's timeout, not the caller's cancel
        HttpRequestException { HttpRequestError: HttpRequestError.NameResolutionError } => false, // no such host: retrying will not help
        TransientStatusException or TruncatedException or HttpRequestException or IOException => true,
        _ => false,
    };

    TimeSpan Delay(Exception e, int attempt) =>
        e is TransientStatusException { RetryAfter: { } after } && after > _o.RetryDelay(attempt) ? Min(after, TimeSpan.FromMinutes(1)) : _o.RetryDelay(attempt);

    static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;

    /// <summary>Runs a metadata request with the retry policy.</summary>
    async Task<T> RetryAsync<T>(string what, Func<int, Task<T>> op, CancellationToken ct)
    {
        for (int attempt = 1; ; attempt++)
        {
            try { return await op(attempt).ConfigureAwait(false); }
            catch (HttpRequestException e) when (!IsTransient(e, ct))
            {
                throw new HubException(HubErrorKind.Network, $"{what}: {e.Message}", e);
            }
            catch (Exception e) when (IsTransient(e, ct))
            {
                if (attempt >= _o.MaxAttempts) throw Exhausted(what, null, e, null);
                await Task.Delay(Delay(e, attempt), ct).ConfigureAwait(false);
            }
        }
    }

    HubException Exhausted(string what, Uri? url, Exception e, string? incomplete)
    {
        string where = url is null ? "" : $" from {url}";
        string kept = incomplete is not null && File.Exists(incomplete) ? $"; the {new FileInfo(incomplete).Length} bytes received are kept in {incomplete} and the next try resumes there" : "";
        return e is TruncatedException t
            ? new HubException(HubErrorKind.Truncated, $"{what}: the download{where} kept ending early ({t.Received} of {t.Expected} bytes announced by Content-Length) after {_o.MaxAttempts} attempts{kept}", e)
            : new HubException(HubErrorKind.Network, $"{what}: download{where} failed after {_o.MaxAttempts} attempts: {Describe(e)}{kept}", e);
    }

    static string Describe(Exception e) => e switch
    {
        TransientStatusException s => $"HTTP {(int)s.Status} {s.Status}",
        OperationCanceledException => "the connection timed out",
        _ => e.Message,
    };

    static TimeSpan? RetryAfter(HttpResponseMessage r) =>
        r.Headers.RetryAfter?.Delta ?? (r.Headers.RetryAfter?.Date is { } d ? d - DateTimeOffset.UtcNow : null);

    string TokenHint() => _o.Token is null
        ? ": the repository is private or gated; accept its terms on the hub and set HF_TOKEN to an access token"
        : ": the token (HF_TOKEN or the saved login) was refused; check that it can read this repository and that its terms are accepted";

    HubException Denied(string repo, HttpStatusCode status, Uri url) =>
        new(HubErrorKind.AccessDenied, $"hf-hub:{repo}: access denied (HTTP {(int)status} from {url}){TokenHint()}");

    HubException NotFound(string repo, string revision, string file, string? errorCode, Uri url) => errorCode switch
    {
        "RepoNotFound" => new(HubErrorKind.NotFound, $"hf-hub:{repo}: no such repository on {_endpoint.GetLeftPart(UriPartial.Authority)} (HTTP 404); check the name{(_o.Token is null ? ", or set HF_TOKEN if it is private" : "")}"),
        "RevisionNotFound" => new(HubErrorKind.NotFound, $"hf-hub:{repo}: no revision '{revision}' (HTTP 404 from {url})"),
        _ => new(HubErrorKind.NotFound, $"hf-hub:{repo}: the repository has no file '{file}' at revision '{revision}' (HTTP 404 from {url})") { MissingFile = file },
    };

    /// <summary>An exclusive lock on a file (the same advisory lock Python's <c>filelock</c> takes), waited for with the retry policy.</summary>
    async Task<IDisposable> LockAsync(string path, string what, CancellationToken ct)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        for (int attempt = 1; ; attempt++)
        {
            try { return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None); }
            catch (IOException) when (attempt < Math.Max(_o.MaxAttempts, 30))
            {
                await Task.Delay(_o.RetryDelay(attempt), ct).ConfigureAwait(false);
            }
            catch (IOException e)
            {
                throw new HubException(HubErrorKind.Network, $"{what}: another process holds {path} (a download in progress?): {e.Message}", e);
            }
        }
    }

    internal static string Hex(byte[] bytes) => Convert.ToHexString(bytes).ToLowerInvariant();

    sealed class TransientStatusException(HttpStatusCode status, TimeSpan? retryAfter, bool restart = false) : Exception($"HTTP {(int)status}")
    {
        public HttpStatusCode Status { get; } = status;
        public TimeSpan? RetryAfter { get; } = retryAfter;
        public bool Restart { get; } = restart;
    }

    sealed class TruncatedException(long received, long expected, Exception? inner = null) : Exception($"body ended after {received} of {expected} bytes", inner)
    {
        public long Received { get; } = received;
        public long Expected { get; } = expected;
    }
}
