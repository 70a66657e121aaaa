using System.Net;
using Microsoft.AspNetCore.Http;

namespace ClipSharp.Server;

/// <summary>Reading images from requests under the upload limit: a multipart file, base64 in JSON, or (when allowed) a URL.</summary>
internal sealed class Uploads(ServeOptions options)
{
    static readonly HttpClient Http = new(new SocketsHttpHandler
    {
        AllowAutoRedirect = false,
        ConnectTimeout = TimeSpan.FromSeconds(10),
        AutomaticDecompression = DecompressionMethods.None,
    })
    { Timeout = TimeSpan.FromSeconds(30) };

    public async Task<byte[]> ReadFile(IFormFile file, CancellationToken ct)
    {
        if (file.Length == 0) throw ApiError.BadRequest("the uploaded image is empty");
        if (file.Length > options.MaxUploadBytes) throw TooLarge();
        using var ms = new MemoryStream((int)file.Length);
        await file.CopyToAsync(ms, ct).ConfigureAwait(false);
        return ms.ToArray();
    }

    public byte[] FromBase64(string text)
    {
        int comma = text.StartsWith("data:", StringComparison.OrdinalIgnoreCase) ? text.IndexOf(',') : -1;
        var payload = comma >= 0 ? text.AsSpan(comma + 1) : text.AsSpan();
        if (payload.Length / 4L * 3 > options.MaxUploadBytes + 3) throw TooLarge();
        var buffer = new byte[payload.Length / 4 * 3 + 3];
        if (!Convert.TryFromBase64Chars(payload, buffer, out int n)) throw ApiError.BadRequest("'image' is not valid base64");
        if (n == 0) throw ApiError.BadRequest("the uploaded image is empty");
        if (n > options.MaxUploadBytes) throw TooLarge();
        return buffer[..n];
    }

    public async Task<byte[]> Fetch(string url, CancellationToken ct)
    {
        if (!options.AllowUrlFetch)
            throw new ApiError(403, "fetching images from URLs is off; start clip serve with --allow-url-fetch to allow it");
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
            throw ApiError.BadRequest("'image_url' must be an absolute http or https URL");
        try
        {
            using var response = await Http.GetAsync(uri, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode) throw ApiError.BadRequest($"fetching the image URL returned HTTP {(int)response.StatusCode}");
            if (response.Content.Headers.ContentLength > options.MaxUploadBytes) throw TooLarge();
            await using var body = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
            using var ms = new MemoryStream();
            var chunk = new byte[81920];
            int read;
            while ((read = await body.ReadAsync(chunk, ct).ConfigureAwait(false)) > 0)
            {
                if (ms.Length + read > options.MaxUploadBytes) throw TooLarge();
                ms.Write(chunk, 0, read);
            }
            if (ms.Length == 0) throw ApiError.BadRequest("the image URL returned no data");
            return ms.ToArray();
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested)
        {
            throw ApiError.BadRequest($"could not fetch the image URL: {e.Message}");
        }
    }

    ApiError TooLarge() => ApiError.TooLarge($"the image is larger than the upload limit of {options.MaxUploadBytes:N0} bytes");
}
