namespace ClipSharp.Hub;

/// <summary>What went wrong when resolving or downloading pretrained weights.</summary>
public enum HubErrorKind
{
    /// <summary>The name is not a known architecture and tag, not <c>hf-hub:org/name</c> and not <c>local-dir:PATH</c>.</summary>
    UnknownName,
    /// <summary>The repository, revision or file does not exist (HTTP 404), or a local folder lacks the files.</summary>
    NotFound,
    /// <summary>HTTP 401 or 403: the repository is private or gated, or the token was refused.</summary>
    AccessDenied,
    /// <summary>Offline (<c>HF_HUB_OFFLINE</c>) and the file is not in the cache.</summary>
    NotCached,
    /// <summary>The downloaded file's SHA-256 is not the published one; nothing was kept.</summary>
    ChecksumMismatch,
    /// <summary>The body kept ending before its announced length.</summary>
    Truncated,
    /// <summary>Connection errors or server errors (5xx, 429) persisted through every retry, or an unexpected status.</summary>
    Network,
}

/// <summary>
/// A pretrained model could not be resolved or downloaded. The message is one line for the user: it names the model,
/// the file or URL and what to do (set <c>HF_TOKEN</c>, check the name, go online). Derives from <see cref="IOException"/>.
/// </summary>
public sealed class HubException : IOException
{
    /// <summary>Creates the exception.</summary>
    public HubException(HubErrorKind kind, string message, Exception? inner = null) : base(message, inner) => Kind = kind;

    /// <summary>The kind of failure.</summary>
    public HubErrorKind Kind { get; }

    /// <summary>For a file a repository does not have (HTTP 404 for an existing repository), its name.</summary>
    internal string? MissingFile { get; init; }
}
