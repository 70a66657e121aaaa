using System.Net;

namespace ClipSharp.Hub;

/// <summary>
/// Where <see cref="PretrainedResolver"/> downloads from and caches to, and how it retries. <see cref="FromEnvironment()"/>
/// reads the variables the Hugging Face tools read (<c>HF_ENDPOINT</c>, <c>HF_HUB_CACHE</c>, <c>HF_HOME</c>,
/// <c>HF_HUB_OFFLINE</c>, <c>HF_TOKEN</c>), so a cache and a login shared with Python work unchanged; change single
/// settings with <c>with</c>.
/// </summary>
public sealed record PretrainedOptions
{
    /// <summary>The hub's address (<c>HF_ENDPOINT</c>, default <c>https://huggingface.co</c>); files are fetched from
    /// <c>{Endpoint}/{repo}/resolve/{revision}/{file}</c>, so a mirror or a static file server laid out that way works.</summary>
    public string Endpoint { get; init; } = DefaultEndpoint;

    /// <summary>The Hugging Face hub cache (<c>models--org--name/{blobs,snapshots,refs}</c>), shared with Python's
    /// <c>huggingface_hub</c>: <c>HF_HUB_CACHE</c>, else <c>$HF_HOME/hub</c>, else <c>~/.cache/huggingface/hub</c>.</summary>
    public string HubCacheDir { get; init; } = "";

    /// <summary>Where files from direct release URLs (OpenAI's, OpenCLIP's GitHub releases) are kept: <c>~/.cache/clip</c>,
    /// the folder OpenAI's <c>clip.load</c> and OpenCLIP use, so their downloads are reused.</summary>
    public string UrlCacheDir { get; init; } = "";

    /// <summary>ClipSharp's own folder for what it adds (<c>$CLIPSHARP_CACHE</c> or <c>~/.cache/clipsharp</c>): the
    /// <c>pretrained/</c> folders that gather a resolved model's files (links into the caches above, plus the config
    /// the pretrained table declares), and the locks of release-URL downloads.</summary>
    public string ClipSharpCacheDir { get; init; } = "";

    /// <summary>No network access at all (<c>HF_HUB_OFFLINE=1</c>): only cached files are used, and a missing one is an error that says so.</summary>
    public bool Offline { get; init; }

    /// <summary>Access token sent as <c>Authorization: Bearer</c> to <see cref="Endpoint"/> (never to the hosts it redirects to):
    /// <c>HF_TOKEN</c>, else the token file <c>huggingface-cli login</c> writes (<c>HF_TOKEN_PATH</c> or <c>$HF_HOME/token</c>).</summary>
    public string? Token { get; init; }

    /// <summary>The revision (branch, tag or commit) fetched for <c>hf-hub:</c> names without <c>@revision</c> and for the table's entries.</summary>
    public string Revision { get; init; } = "main";

    /// <summary>Tries per request before giving up on connection errors, cut-off bodies, HTTP 5xx and 429.</summary>
    public int MaxAttempts { get; init; } = 5;

    /// <summary>Wait before retry number n (1-based); default 1 s, 2 s, 4 s, … capped at 30 s. Tests pass zero.</summary>
    public Func<int, TimeSpan> RetryDelay { get; init; } = DefaultRetryDelay;

    /// <summary>The proxy; null uses the system's, which on Linux and macOS comes from <c>HTTPS_PROXY</c>, <c>HTTP_PROXY</c>,
    /// <c>ALL_PROXY</c> and <c>NO_PROXY</c> (either case). Loopback addresses are always reached directly.</summary>
    public IWebProxy? Proxy { get; init; }

    /// <summary>For <c>hf-hub:</c> names, also fetch the repository's tokenizer files (<c>vocab.json</c>, <c>merges.txt</c>) when it has
    /// them and keep them beside the weights (default true); models without them use the built-in OpenAI vocabulary.</summary>
    public bool IncludeTokenizer { get; init; } = true;

    /// <summary>Extra pretrained entries consulted before the built-in table (tests register models served locally this way).</summary>
    internal IReadOnlyList<PretrainedWeights> ExtraEntries { get; init; } = [];

    /// <summary>Architectures of <see cref="ExtraEntries"/> that the built-in table does not know.</summary>
    internal IReadOnlyList<PretrainedArchitecture> ExtraArchitectures { get; init; } = [];

    /// <summary>The public Hugging Face hub.</summary>
    public const string DefaultEndpoint = "https://huggingface.co";

    /// <summary>The options the environment of this process asks for.</summary>
    public static PretrainedOptions FromEnvironment() => FromEnvironment(Environment.GetEnvironmentVariable);

    /// <summary>The options a set of environment variables asks for (<paramref name="getenv"/> returns null for an unset variable).</summary>
    public static PretrainedOptions FromEnvironment(Func<string, string?> getenv)
    {
        ArgumentNullException.ThrowIfNull(getenv);
        string? Get(string name) => getenv(name) is { Length: > 0 } v ? v : null;
        string home = Get("HOME") ?? Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        string cacheRoot = Get("XDG_CACHE_HOME") ?? Path.Combine(home, ".cache");
        string hfHome = ExpandHome(Get("HF_HOME"), home) ?? Path.Combine(cacheRoot, "huggingface");
        string hubCache = ExpandHome(Get("HF_HUB_CACHE") ?? Get("HUGGINGFACE_HUB_CACHE"), home) ?? Path.Combine(hfHome, "hub");
        string? token = Get("HF_TOKEN") ?? Get("HUGGING_FACE_HUB_TOKEN");
        if (token is null)
        {
            string tokenFile = ExpandHome(Get("HF_TOKEN_PATH"), home) ?? Path.Combine(hfHome, "token");
            try
            {
                if (File.Exists(tokenFile) && File.ReadAllText(tokenFile).Trim() is { Length: > 0 } t) token = t;
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
        return new PretrainedOptions
        {
            Endpoint = (Get("HF_ENDPOINT") ?? DefaultEndpoint).TrimEnd('/'),
            HubCacheDir = hubCache,
            UrlCacheDir = Path.Combine(cacheRoot, "clip"),
            ClipSharpCacheDir = ExpandHome(Get("CLIPSHARP_CACHE"), home) ?? Path.Combine(home, ".cache", "clipsharp"),
            Offline = IsTrue(Get("HF_HUB_OFFLINE")),
            Token = token,
        };
    }

    /// <summary>The Hugging Face tools' reading of a boolean variable: 1, ON, YES or TRUE in any case.</summary>
    internal static bool IsTrue(string? value) =>
        value is not null && value.Trim().ToUpperInvariant() is "1" or "ON" or "YES" or "TRUE";

    static string? ExpandHome(string? path, string home) =>
        path is null ? null : path == "~" ? home : path.StartsWith("~/", StringComparison.Ordinal) ? Path.Combine(home, path[2..]) : path;

    static TimeSpan DefaultRetryDelay(int attempt) => TimeSpan.FromSeconds(Math.Min(30, Math.Pow(2, Math.Max(0, attempt - 1))));

    /// <summary>Fills the folders left empty (a record made with <c>new()</c>) from the environment's defaults.</summary>
    internal PretrainedOptions WithDefaults()
    {
        if (HubCacheDir.Length > 0 && UrlCacheDir.Length > 0 && ClipSharpCacheDir.Length > 0) return this;
        var env = FromEnvironment();
        return this with
        {
            HubCacheDir = HubCacheDir.Length > 0 ? HubCacheDir : env.HubCacheDir,
            UrlCacheDir = UrlCacheDir.Length > 0 ? UrlCacheDir : env.UrlCacheDir,
            ClipSharpCacheDir = ClipSharpCacheDir.Length > 0 ? ClipSharpCacheDir : env.ClipSharpCacheDir,
        };
    }
}
