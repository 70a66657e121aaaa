using System.Text.Json;
using ClipSharp.Imaging;
using ClipSharp.ZeroShot;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.WebUtilities;

namespace ClipSharp.Server;

/// <summary>The routes: the page, the JSON API, thumbnails. Every refusal is a 4xx with <c>{"error": …}</c>.</summary>
internal sealed class Endpoints(IndexCatalog catalog, ServeOptions options, Thumbnails thumbnails, Uploads uploads)
{
    const int DefaultK = 20, MaxTextLength = 2000, MaxLabelLength = 300;

    public void Map(IEndpointRouteBuilder app)
    {
        app.MapGet("/", () => Page("index.html")).ExcludeFromDescription();
        app.MapGet("/app.js", () => Page("app.js")).ExcludeFromDescription();
        app.MapGet("/app.css", () => Page("app.css")).ExcludeFromDescription();
        app.MapGet("/favicon.svg", () => Page("favicon.svg")).ExcludeFromDescription();

        app.MapGet("/health", Health).WithTags("service").WithSummary("Liveness, and what is served").Produces<HealthResponse>();
        app.MapGet("/api/indexes", () => Results.Json(Infos(), Json.Options)).WithTags("service").WithSummary("The served indexes")
            .Produces<IReadOnlyList<IndexInfo>>();

        app.MapGet("/api/search", SearchGet)
            .WithTags("search").WithSummary("Search by text, or by an indexed image (more like this)")
            .WithDescription("Exactly one of text and similar. Results are ranked by cosine similarity; page with offset and k.")
            .Produces<SearchResponse>().Produces<ErrorResponse>(400).Produces<ErrorResponse>(404);
        app.MapPost("/api/search", (Func<HttpContext, Task<IResult>>)SearchPost)
            .WithTags("search").WithSummary("Search by an uploaded image (multipart 'image'), or by JSON: base64 image, embedding, text, image_url or similar")
            .Accepts<ImageSearchForm>("multipart/form-data", "application/json")
            .Produces<SearchResponse>().Produces<ErrorResponse>(400).Produces<ErrorResponse>(403).Produces<ErrorResponse>(413).Produces<ErrorResponse>(415);
        app.MapPost("/api/classify", (Func<HttpContext, Task<IResult>>)Classify)
            .WithTags("zero-shot").WithSummary("Zero-shot classification of an image over labels (multipart 'image' + 'labels' one per line, or JSON)")
            .Accepts<ClassifyForm>("multipart/form-data", "application/json")
            .Produces<ClassifyResponse>().Produces<ErrorResponse>(400).Produces<ErrorResponse>(413).Produces<ErrorResponse>(415);
        app.MapGet("/api/thumbnail", Thumbnail)
            .WithTags("images").WithSummary("A JPEG thumbnail of an indexed image (path as in a result)")
            .Produces(200, contentType: "image/jpeg").Produces<ErrorResponse>(404);
        app.MapGet("/api/image", Original)
            .WithTags("images").WithSummary("The indexed image file itself (path as in a result)")
            .Produces(200, null, "image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp").Produces<ErrorResponse>(404);
    }

    static IResult Page(string name)
    {
        var asm = typeof(Endpoints).Assembly;
        using var s = asm.GetManifestResourceStream("web/" + name)!;
        using var ms = new MemoryStream();
        s.CopyTo(ms);
        string type = Path.GetExtension(name) switch
        {
            ".html" => "text/html; charset=utf-8",
            ".js" => "text/javascript; charset=utf-8",
            ".css" => "text/css; charset=utf-8",
            ".svg" => "image/svg+xml",
            _ => "application/octet-stream",
        };
        return Results.Bytes(ms.ToArray(), type);
    }

    List<IndexInfo> Infos() => catalog.Names.Select(n =>
    {
        var idx = catalog.Acquire(n);
        try { return new IndexInfo(idx.Name, idx.ServedCount, idx.Index.Dim, idx.CaptionCount, idx.Generation, Path.GetFileName(idx.Encoder.Checkpoint),
            idx.Approximate is null ? "exact" : "approximate"); }
        finally { idx.Release(); }
    }).ToList();

    IResult Health() => Results.Json(new HealthResponse("ok", Infos(), options.AllowUrlFetch, options.MaxUploadBytes), Json.Options);

    Task<IResult> SearchGet(HttpContext ctx, string? text, string? similar, int? k, int? offset, bool? dedup, string? index) =>
        Search(new SearchRequest { Text = text, Similar = similar, K = k, Offset = offset, Dedup = dedup, Index = index }, null, ctx.RequestAborted);

    async Task<IResult> SearchPost(HttpContext ctx)
    {
        var request = ctx.Request;
        var ct = ctx.RequestAborted;
        if (request.HasFormContentType)
        {
            var form = await request.ReadFormAsync(ct).ConfigureAwait(false);
            Known(form, "image", "text", "similar", "k", "offset", "dedup", "index");
            var file = form.Files.GetFile("image");
            if (file is null && form.ContainsKey("image")) throw ApiError.BadRequest("'image' must be a file part of the multipart body");
            var r = new SearchRequest
            {
                Text = Field(form, "text"), Similar = Field(form, "similar"), Index = Field(form, "index"),
                K = Int(form, "k"), Offset = Int(form, "offset"), Dedup = Bool(form, "dedup"),
            };
            byte[]? upload = file is null ? null : await uploads.ReadFile(file, ct).ConfigureAwait(false);
            return await Search(r, upload, ct).ConfigureAwait(false);
        }
        if (request.HasJsonContentType())
        {
            var r = await JsonSerializer.DeserializeAsync<SearchRequest>(request.Body, Json.Options, ct).ConfigureAwait(false)
                ?? throw ApiError.BadRequest("the JSON body is null");
            return await Search(r, null, ct).ConfigureAwait(false);
        }
        throw Unsupported();
    }

    async Task<IResult> Search(SearchRequest r, byte[]? upload, CancellationToken ct)
    {
        int k = r.K ?? DefaultK, offset = r.Offset ?? 0;
        if (k < 1 || k > options.MaxPageSize) throw ApiError.BadRequest($"'k' must be between 1 and {options.MaxPageSize}");
        if (offset < 0) throw ApiError.BadRequest("'offset' must not be negative");
        if ((long)offset + k > options.MaxResults) throw ApiError.BadRequest($"offset + k must be at most {options.MaxResults}");
        int given = (r.Text is null ? 0 : 1) + (upload is null && r.Image is null ? 0 : 1) + (r.Embedding is null ? 0 : 1)
            + (r.ImageUrl is null ? 0 : 1) + (r.Similar is null ? 0 : 1);
        if (given != 1) throw ApiError.BadRequest("give exactly one query: text, image, embedding, image_url or similar");
        byte[]? image = upload ?? (r.Image is { } b64 ? uploads.FromBase64(b64) : null);
        if (r.ImageUrl is { } url) image = await uploads.Fetch(url, ct).ConfigureAwait(false);

        var idx = catalog.Acquire(r.Index);
        try
        {
            float[] query;
            QueryInfo info;
            if (r.Text is { } text)
            {
                text = text.Trim();
                if (text.Length == 0) throw ApiError.BadRequest("'text' is empty");
                if (text.Length > MaxTextLength) throw ApiError.BadRequest($"'text' is longer than {MaxTextLength} characters");
                query = (await idx.Encoder.EmbedTexts([text], ct).ConfigureAwait(false))[0];
                info = new QueryInfo("text", Text: text);
            }
            else if (image is not null)
            {
                query = await idx.Encoder.EmbedImage(image, ct).ConfigureAwait(false);
                info = new QueryInfo(r.ImageUrl is null ? "image" : "url", Path: r.ImageUrl);
            }
            else if (r.Embedding is { } e)
            {
                if (e.Length != idx.Index.Dim) throw ApiError.BadRequest($"'embedding' has {e.Length} values; this index holds {idx.Index.Dim}-wide embeddings");
                double norm = Math.Sqrt(e.Sum(v => (double)v * v));
                if (!double.IsFinite(norm) || norm == 0) throw ApiError.BadRequest("'embedding' must be finite and not all zero");
                query = e.Select(v => (float)(v / norm)).ToArray();
                info = new QueryInfo("embedding");
            }
            else
            {
                int row = idx.Row(r.Similar);
                if (row < 0) throw ApiError.NotFound("'similar' is not the path of an image in this index");
                query = idx.Embedding(row);
                info = new QueryInfo("similar", Path: idx.Keys[row]);
            }
            bool dedup = r.Dedup ?? false;
            var hits = idx.Search(query, offset, k, dedup ? options.DedupThreshold : null, out bool more);
            more &= offset + k < options.MaxResults;
            var results = hits.Select((h, i) =>
            {
                var key = idx.Keys[h.Row]!;
                return new SearchResult(offset + i + 1, key, h.Score, ThumbnailUrl(idx.Name, key), idx.Captions[h.Row]);
            }).ToList();
            return Results.Json(new SearchResponse(idx.Name, info, offset, k, dedup, results.Count, idx.ServedCount, more, results), Json.Options);
        }
        finally { idx.Release(); }
    }

    static string ThumbnailUrl(string index, string key) =>
        $"/api/thumbnail?index={Uri.EscapeDataString(index)}&path={Uri.EscapeDataString(key)}";

    async Task<IResult> Classify(HttpContext ctx)
    {
        var request = ctx.Request;
        var ct = ctx.RequestAborted;
        byte[] image;
        IReadOnlyList<string> labels;
        string? template, index;
        if (request.HasFormContentType)
        {
            var form = await request.ReadFormAsync(ct).ConfigureAwait(false);
            Known(form, "image", "labels", "template", "index");
            var file = form.Files.GetFile("image") ?? throw ApiError.BadRequest("send the image as the multipart file 'image'");
            image = await uploads.ReadFile(file, ct).ConfigureAwait(false);
            labels = PromptSets.ParseLines(Field(form, "labels") ?? "");
            (template, index) = (Field(form, "template"), Field(form, "index"));
        }
        else if (request.HasJsonContentType())
        {
            var r = await JsonSerializer.DeserializeAsync<ClassifyRequest>(request.Body, Json.Options, ct).ConfigureAwait(false)
                ?? throw ApiError.BadRequest("the JSON body is null");
            image = uploads.FromBase64(r.Image ?? throw ApiError.BadRequest("'image' (base64) is missing"));
            labels = (r.Labels ?? []).Select(l => l.Trim()).Where(l => l.Length > 0).ToList();
            (template, index) = (r.Template, r.Index);
        }
        else throw Unsupported();

        labels = labels.Distinct(StringComparer.Ordinal).ToList();
        if (labels.Count == 0) throw ApiError.BadRequest("give at least one label ('labels', one per line)");
        if (labels.Count > options.MaxLabels) throw ApiError.BadRequest($"at most {options.MaxLabels} labels");
        if (labels.Any(l => l.Length > MaxLabelLength)) throw ApiError.BadRequest($"a label is longer than {MaxLabelLength} characters");
        template = string.IsNullOrWhiteSpace(template) ? null : template.Trim();
        if (template is not null && !PromptSets.HasPlaceholder(template)) throw ApiError.BadRequest("'template' needs {} where the label goes, e.g. \"a photo of a {}.\"");

        var idx = catalog.Acquire(index);
        try
        {
            var embedding = await idx.Encoder.EmbedImage(image, ct).ConfigureAwait(false);
            var probs = await idx.Encoder.Classify(embedding, labels, template, ct).ConfigureAwait(false);
            var ranked = labels.Select((l, i) => new LabelProbability(l, probs[i])).OrderByDescending(p => p.Probability).ToList();
            return Results.Json(new ClassifyResponse(idx.Name, template, ranked), Json.Options);
        }
        finally { idx.Release(); }
    }

    IResult Thumbnail(HttpContext ctx, string? path, string? index, int? size)
    {
        int px = size ?? options.ThumbnailSize;
        if (px < 32 || px > 2 * options.ThumbnailSize) throw ApiError.BadRequest($"'size' must be between 32 and {2 * options.ThumbnailSize}");
        var idx = catalog.Acquire(index);
        try
        {
            var file = ContainedFile(idx, path);
            var (jpeg, etag) = thumbnails.Get(file, px);
            ctx.Response.Headers.ETag = etag;
            ctx.Response.Headers.CacheControl = "no-cache";
            if (ctx.Request.Headers.IfNoneMatch.Contains(etag)) return Results.StatusCode(304);
            return Results.Bytes(jpeg, "image/jpeg");
        }
        finally { idx.Release(); }
    }

    IResult Original(string? path, string? index)
    {
        var idx = catalog.Acquire(index);
        try
        {
            var file = ContainedFile(idx, path);
            string type = Path.GetExtension(file).ToLowerInvariant() switch
            {
                ".jpg" or ".jpeg" => "image/jpeg",
                ".png" => "image/png",
                ".gif" => "image/gif",
                ".bmp" => "image/bmp",
                ".webp" => "image/webp",
                ".tif" or ".tiff" => "image/tiff",
                _ => "application/octet-stream",
            };
            return Results.Bytes(File.ReadAllBytes(file), type);
        }
        finally { idx.Release(); }
    }

    /// <summary>The real file of a requested path, or 404 (the same answer for a path that is not indexed and one that leads outside).</summary>
    static string ContainedFile(ServedIndex idx, string? path)
    {
        if (string.IsNullOrEmpty(path)) throw ApiError.BadRequest("'path' is missing");
        int row = idx.Row(path);
        return (row < 0 ? null : idx.ContainedFile(row)) ?? throw ApiError.NotFound("not an image of this index");
    }

    static ApiError Unsupported() =>
        new(415, "send multipart/form-data (with the file 'image') or application/json");

    static void Known(IFormCollection form, params string[] names)
    {
        foreach (var key in form.Keys.Concat(form.Files.Select(f => f.Name)))
            if (!names.Contains(key, StringComparer.Ordinal)) throw ApiError.BadRequest($"unknown form field '{key}'; expected {string.Join(", ", names)}");
    }

    static string? Field(IFormCollection form, string name) =>
        form.TryGetValue(name, out var v) && v.Count > 0 ? v.ToString() : null;

    static int? Int(IFormCollection form, string name) =>
        Field(form, name) is not { } s ? null
        : int.TryParse(s, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var v) ? v
        : throw ApiError.BadRequest($"'{name}' must be an integer");

    static bool? Bool(IFormCollection form, string name) =>
        Field(form, name) is not { } s ? null
        : bool.TryParse(s, out var v) ? v
        : s == "1" ? true : s == "0" ? false : throw ApiError.BadRequest($"'{name}' must be true or false");
}
