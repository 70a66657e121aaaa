using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http;

namespace ClipSharp.Server;

// The JSON shapes of the API (snake_case on the wire). They are the contract documented in docs/serve.md and in the
// OpenAPI document at /openapi/v1.json; add fields, do not rename or remove them.

/// <summary>A search: exactly one of text, image (base64), embedding, image_url or similar (a result's path), plus paging.</summary>
public sealed record SearchRequest
{
    /// <summary>Text query, embedded by the text tower.</summary>
    public string? Text { get; init; }
    /// <summary>An encoded image (JPEG, PNG, WebP, GIF, BMP) in base64, optionally as a data: URL.</summary>
    public string? Image { get; init; }
    /// <summary>A query embedding of the index's width (normalised by the server).</summary>
    public float[]? Embedding { get; init; }
    /// <summary>An image to download and use as the query; refused unless the server runs with --allow-url-fetch.</summary>
    public string? ImageUrl { get; init; }
    /// <summary>"More like this": the path of an indexed image, whose stored embedding is the query.</summary>
    public string? Similar { get; init; }
    /// <summary>Results per page (default 20).</summary>
    public int? K { get; init; }
    /// <summary>Rank of the first result (default 0).</summary>
    public int? Offset { get; init; }
    /// <summary>Leave out near-duplicates of better results.</summary>
    public bool? Dedup { get; init; }
    /// <summary>Index name (default: the first served).</summary>
    public string? Index { get; init; }
}

/// <summary>The multipart form of <c>POST /api/search</c>: an image file and the paging fields.</summary>
public sealed class ImageSearchForm
{
    /// <summary>The query image.</summary>
    public IFormFile? Image { get; set; }
    /// <summary>Results per page.</summary>
    public int? K { get; set; }
    /// <summary>Rank of the first result.</summary>
    public int? Offset { get; set; }
    /// <summary>Leave out near-duplicates.</summary>
    public bool? Dedup { get; set; }
    /// <summary>Index name.</summary>
    public string? Index { get; set; }
}

/// <summary>What a search was asked: kind is text, image, embedding, url or similar.</summary>
public sealed record QueryInfo(string Kind, string? Text = null, string? Path = null);

/// <summary>One result. Path is relative to the index's folder ('/' separators).</summary>
public sealed record SearchResult(int Rank, string Path, float Score, string Thumbnail, string? Caption);

/// <summary>One page of results; total is the number of images ranked, more says whether a next page exists.</summary>
public sealed record SearchResponse(string Index, QueryInfo Query, int Offset, int K, bool Dedup, int Count, int Total, bool More, IReadOnlyList<SearchResult> Results);

/// <summary>A zero-shot request in JSON: a base64 image and its candidate labels.</summary>
public sealed record ClassifyRequest
{
    /// <summary>An encoded image in base64 (or a data: URL).</summary>
    public string? Image { get; init; }
    /// <summary>Candidate labels.</summary>
    public string[]? Labels { get; init; }
    /// <summary>Prompt with {} for the label, e.g. "a photo of a {}."; default: the label as it is.</summary>
    public string? Template { get; init; }
    /// <summary>Index whose model classifies (default: the first).</summary>
    public string? Index { get; init; }
}

/// <summary>The multipart form of <c>POST /api/classify</c>.</summary>
public sealed class ClassifyForm
{
    /// <summary>The image.</summary>
    public IFormFile? Image { get; set; }
    /// <summary>Labels, one per line.</summary>
    public string? Labels { get; set; }
    /// <summary>Prompt with {} for the label.</summary>
    public string? Template { get; set; }
    /// <summary>Index whose model classifies.</summary>
    public string? Index { get; set; }
}

/// <summary>One label and its probability.</summary>
public sealed record LabelProbability(string Label, float Probability);

/// <summary>Labels with probabilities (summing to 1), most probable first.</summary>
public sealed record ClassifyResponse(string Index, string? Template, IReadOnlyList<LabelProbability> Labels);

/// <summary>A served index. Search is "approximate" when an HNSW index (NAME.index.ann) built from these embeddings is used, else "exact".</summary>
public sealed record IndexInfo(string Name, int Images, long Dim, int Captions, long Generation, string Model, string Search = "exact");

/// <summary><c>GET /health</c>.</summary>
public sealed record HealthResponse(string Status, IReadOnlyList<IndexInfo> Indexes, bool UrlFetch, long MaxUploadBytes);

/// <summary>Every refused request: the status code and this body.</summary>
public sealed record ErrorResponse(string Error);

internal static class Json
{
    public static readonly JsonSerializerOptions Options = Configure(new JsonSerializerOptions(JsonSerializerDefaults.Web));

    public static JsonSerializerOptions Configure(JsonSerializerOptions o)
    {
        o.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower;
        o.DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull;
        o.UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow;
        return o;
    }
}
