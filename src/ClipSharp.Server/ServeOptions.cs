namespace ClipSharp.Server;

/// <summary>What <c>clip serve</c> serves and the limits it enforces (a plain record; every limit has a safe default).</summary>
public sealed record ServeOptions
{
    /// <summary>Index files written by <c>clip index</c>; each is served under its own name (the file name without <c>.index.safetensors</c>).</summary>
    public required IReadOnlyList<string> Indexes { get; init; }

    /// <summary>Checkpoint to embed queries with; default: the one each index was built with.</summary>
    public string? ModelPath { get; init; }

    /// <summary>Architecture config for <see cref="ModelPath"/> (default: the one the index was built with, when its own checkpoint is used).</summary>
    public string? ConfigPath { get; init; }

    /// <summary>BPE vocabulary; default: the usual search (environment variable, the checkpoint's folder, the user cache).</summary>
    public string? VocabPath { get; init; }

    /// <summary>CSV/TSV tables with an image column and a caption column; captions of indexed images are shown and searchable.
    /// A table named <c>NAME.captions.csv</c> beside <c>NAME.index.safetensors</c> is read without being listed.</summary>
    public IReadOnlyList<string> CaptionFiles { get; init; } = [];

    /// <summary>Address to listen on. Loopback unless told otherwise.</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>TCP port; 0 picks a free one (read it from <see cref="ClipServer.Address"/>).</summary>
    public int Port { get; init; } = 8080;

    /// <summary>Largest accepted image upload in bytes (also the limit for a fetched URL).</summary>
    public long MaxUploadBytes { get; init; } = 16L << 20;

    /// <summary>Largest declared image size in pixels, checked from the header before decoding (decompression bombs).</summary>
    public long MaxImagePixels { get; init; } = 40_000_000;

    /// <summary>Lets a query name an image by URL, which the server then downloads. Off by default (server-side request forgery).</summary>
    public bool AllowUrlFetch { get; init; }

    /// <summary>Most results a single search may reach: offset + k.</summary>
    public int MaxResults { get; init; } = 10_000;

    /// <summary>Most results in one page (k).</summary>
    public int MaxPageSize { get; init; } = 500;

    /// <summary>Most labels in one zero-shot request.</summary>
    public int MaxLabels { get; init; } = 500;

    /// <summary>Cosine similarity at or above which a result counts as a duplicate of a better one (when deduplication is asked for).</summary>
    public float DedupThreshold { get; init; } = 0.95f;

    /// <summary>Longest side of a thumbnail in pixels (requests may ask for 32 up to twice this).</summary>
    public int ThumbnailSize { get; init; } = 256;

    /// <summary>Memory for cached thumbnails, in bytes.</summary>
    public long ThumbnailCacheBytes { get; init; } = 64L << 20;

    /// <summary>Follow index files and swap in a rebuilt one when it appears (default on).</summary>
    public bool WatchIndexes { get; init; } = true;

    /// <summary>Where the server reports what it does (loading, reloads, failures); null: silent.</summary>
    public Action<string>? Log { get; init; }
}
