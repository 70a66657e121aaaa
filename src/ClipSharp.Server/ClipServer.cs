using System.Net;
using System.Text.Json;
using ClipSharp.Imaging;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ClipSharp.Server;

/// <summary>
/// <c>clip serve</c>: image search and zero-shot classification over ClipSharp indexes, as one web page and a JSON API,
/// on Kestrel. Binds to loopback unless told otherwise; answers every bad request with a 4xx and a JSON error.
/// </summary>
public sealed class ClipServer : IAsyncDisposable
{
    readonly WebApplication app;
    readonly IndexCatalog catalog;

    ClipServer(WebApplication app, IndexCatalog catalog, Uri address)
    {
        this.app = app;
        this.catalog = catalog;
        Address = address;
    }

    /// <summary>The bound address, e.g. http://127.0.0.1:8080/ (with the real port when 0 was asked for).</summary>
    public Uri Address { get; }

    /// <summary>Names of the served indexes.</summary>
    public IReadOnlyList<string> IndexNames => catalog.Names;

    /// <summary>Raised after a rebuilt index file was swapped in: index name, new generation.</summary>
    public event Action<string, long>? IndexReloaded
    {
        add => catalog.Reloaded += value;
        remove => catalog.Reloaded -= value;
    }

    /// <summary>Raised when a changed index file could not be swapped in (the old one stays): index name, reason.</summary>
    public event Action<string, string>? IndexReloadFailed
    {
        add => catalog.ReloadFailed += value;
        remove => catalog.ReloadFailed -= value;
    }

    /// <summary>Loads the indexes and their models and starts listening.</summary>
    /// <exception cref="ServeException">An index, model, vocabulary, caption table or the address cannot be used; the message says which.</exception>
    public static async Task<ClipServer> StartAsync(ServeOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var ip = ParseHost(options.Host);
        if (options.Port is < 0 or > 65535) throw new ServeException($"--port {options.Port}: must be between 0 and 65535");
        if (options.MaxUploadBytes < 1) throw new ServeException("the upload limit must be positive");
        var catalog = IndexCatalog.Open(options);
        try
        {
            var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
            {
                Args = [],
                EnvironmentName = Environments.Production,
                ApplicationName = typeof(ClipServer).Assembly.GetName().Name,
                ContentRootPath = AppContext.BaseDirectory,
            });
            builder.Logging.ClearProviders();
            long bodyLimit = options.MaxUploadBytes / 3 * 4 + (1 << 20); // base64 in JSON, plus the form fields
            builder.WebHost.ConfigureKestrel(k =>
            {
                k.AddServerHeader = false;
                k.Limits.MaxRequestBodySize = bodyLimit;
                k.Limits.MaxRequestHeadersTotalSize = 32 * 1024;
                k.Listen(ip, options.Port);
            });
            builder.Services.Configure<FormOptions>(f =>
            {
                f.MultipartBodyLengthLimit = options.MaxUploadBytes + (1 << 20);
                f.ValueCountLimit = 64;
                f.ValueLengthLimit = 1 << 20;
                f.MultipartHeadersLengthLimit = 16 * 1024;
            });
            builder.Services.ConfigureHttpJsonOptions(j => Json.Configure(j.SerializerOptions));
            builder.Services.Configure<RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
            builder.Services.AddRouting();
            builder.Services.AddOpenApi(o => o.AddDocumentTransformer((doc, _, _) =>
            {
                doc.Info.Title = "ClipSharp search API";
                doc.Info.Version = "1";
                doc.Info.Description = "Image search and zero-shot classification over ClipSharp indexes (clip serve). Errors are {\"error\": \"...\"} with a 4xx status.";
                return Task.CompletedTask;
            }).AddOperationTransformer(async (operation, context, ct) =>
            {
                // Minimal APIs record one request body per route; the two POST routes take JSON as well as multipart.
                var jsonBody = context.Description.RelativePath switch
                {
                    "api/search" when context.Description.HttpMethod == "POST" => typeof(SearchRequest),
                    "api/classify" => typeof(ClassifyRequest),
                    _ => null,
                };
                if (jsonBody is not null && operation.RequestBody?.Content is { } content)
                    content["application/json"] = new Microsoft.OpenApi.OpenApiMediaType { Schema = await context.GetOrCreateSchemaAsync(jsonBody, null, ct).ConfigureAwait(false) };
            }));

            var app = builder.Build();
            bool loopbackOnly = IPAddress.IsLoopback(ip);
            app.Use((ctx, next) => Guard(ctx, next, loopbackOnly, options));
            app.UseStatusCodePages(EmptyStatusAsJson);
            new Endpoints(catalog, options, new Thumbnails(options.ThumbnailCacheBytes, options.MaxImagePixels), new Uploads(options)).Map(app);
            app.MapOpenApi("/openapi/v1.json");
            try { await app.StartAsync(cancellationToken).ConfigureAwait(false); }
            catch (IOException e) { await app.DisposeAsync().ConfigureAwait(false); throw new ServeException($"cannot listen on {options.Host}:{options.Port}: {e.Message}", e); }
            var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            var uri = new UriBuilder(bound) { Path = "/" }.Uri;
            return new ClipServer(app, catalog, uri);
        }
        catch
        {
            catalog.Dispose();
            throw;
        }
    }

    static IPAddress ParseHost(string host)
    {
        if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase)) return IPAddress.Loopback;
        return IPAddress.TryParse(host.Trim('[', ']'), out var ip) ? ip
            : throw new ServeException($"--host {host}: give an IP address to listen on (127.0.0.1, ::1, 0.0.0.0, ...)");
    }

    /// <summary>Maps every failure to a status and a JSON error; adds the security headers; refuses foreign Host headers on a loopback server.</summary>
    static async Task Guard(HttpContext ctx, RequestDelegate next, bool loopbackOnly, ServeOptions options)
    {
        var headers = ctx.Response.Headers;
        headers.XContentTypeOptions = "nosniff";
        headers["Referrer-Policy"] = "no-referrer";
        headers.XFrameOptions = "DENY";
        headers.ContentSecurityPolicy = "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";
        try
        {
            // A page elsewhere that resolves its own name to 127.0.0.1 (DNS rebinding) sends its own name as Host.
            if (loopbackOnly && !IsLoopbackHost(ctx.Request.Host.Host))
                throw ApiError.BadRequest("this server answers requests to 127.0.0.1, localhost or [::1] only");
            await next(ctx).ConfigureAwait(false);
        }
        catch (Exception e) when (!ctx.Response.HasStarted)
        {
            if (e is OperationCanceledException && ctx.RequestAborted.IsCancellationRequested) return;
            var (status, message) = Describe(e);
            if (status >= 500) options.Log?.Invoke($"error on {ctx.Request.Method} {ctx.Request.Path}: {e}");
            ctx.Response.Clear();
            ctx.Response.StatusCode = status;
            await ctx.Response.WriteAsJsonAsync(new ErrorResponse(message), Json.Options).ConfigureAwait(false);
        }
    }

    static bool IsLoopbackHost(string host) =>
        host.Equals("localhost", StringComparison.OrdinalIgnoreCase)
        || (IPAddress.TryParse(host.Trim('[', ']'), out var ip) && IPAddress.IsLoopback(ip));

    static (int Status, string Message) Describe(Exception e) => e switch
    {
        ApiError a => (a.Status, a.Message),
        ImageTooLargeException t => (413, $"the image declares {t.Width}x{t.Height} pixels, more than the limit of {t.MaxPixels:N0} (a decompression bomb?)"),
        ImageDecodeException d => (400, $"not a decodable image: {d.Problem}"),
        BadHttpRequestException b => (b.StatusCode, b.StatusCode == 413 ? "the request body is larger than the upload limit" : b.Message),
        JsonException j => (400, $"malformed JSON body: {j.Message}"),
        InvalidDataException d when d.Message.Contains("length limit", StringComparison.OrdinalIgnoreCase) => (413, "the multipart body is larger than the upload limit"),
        InvalidDataException d => (400, $"malformed multipart body: {d.Message}"),
        IOException io => (400, $"could not read the request: {io.Message}"),
        _ => (500, "internal error (reported in the server's log)"),
    };

    static async Task EmptyStatusAsJson(StatusCodeContext context)
    {
        var response = context.HttpContext.Response;
        if (response.ContentLength is not null || !string.IsNullOrEmpty(response.ContentType)) return;
        string message = response.StatusCode switch
        {
            404 => "no such route; see /openapi/v1.json",
            405 => "method not allowed on this route",
            _ => ReasonPhrases.GetReasonPhrase(response.StatusCode),
        };
        await response.WriteAsJsonAsync(new ErrorResponse(message), Json.Options).ConfigureAwait(false);
    }

    /// <summary>Waits until <paramref name="cancellationToken"/> is cancelled (Ctrl+C in the CLI), then stops.</summary>
    public async Task RunUntilCancelledAsync(CancellationToken cancellationToken)
    {
        try { await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false); }
        catch (OperationCanceledException) { }
    }

    /// <summary>Stops listening, lets requests in flight finish, and frees the indexes and models.</summary>
    public async ValueTask DisposeAsync()
    {
        await app.StopAsync().ConfigureAwait(false);
        await app.DisposeAsync().ConfigureAwait(false);
        catalog.Dispose();
    }
}
