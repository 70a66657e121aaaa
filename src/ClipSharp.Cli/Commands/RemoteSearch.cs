using System.Net.Http.Headers;
using System.Text.Json;
using ClipSharp.Search;
using ClipSharp.ZeroShot;

namespace ClipSharp.Cli.Commands;

/// <summary><c>clip search --server URL</c>: the same queries answered by a running <c>clip serve</c> over its JSON API.</summary>
internal static class RemoteSearch
{
    public static List<(string Query, IReadOnlyList<SearchHit> Hits)> Run(string server, string? index, IReadOnlyList<string> texts,
        IReadOnlyList<string> images, string? template, int k)
    {
        if (!Uri.TryCreate(server, UriKind.Absolute, out var baseUri) || (baseUri.Scheme != Uri.UriSchemeHttp && baseUri.Scheme != Uri.UriSchemeHttps))
            throw new CliException($"--server {server}: give an http:// or https:// URL");
        using var http = new HttpClient { BaseAddress = baseUri, Timeout = TimeSpan.FromMinutes(2) };
        var results = new List<(string, IReadOnlyList<SearchHit>)>();
        string Common() => $"k={k}" + (index is null ? "" : $"&index={Uri.EscapeDataString(index)}");
        foreach (var q in texts)
        {
            string text = template is null ? q : PromptSets.Fill(template, q);
            results.Add((q, Send(http, server, () => new HttpRequestMessage(HttpMethod.Get, $"/api/search?text={Uri.EscapeDataString(text)}&{Common()}"))));
        }
        foreach (var path in images)
        {
            if (!File.Exists(path)) throw new CliException($"image not found: {path}");
            results.Add(("image:" + path, Send(http, server, () =>
            {
                var form = new MultipartFormDataContent();
                var file = new ByteArrayContent(File.ReadAllBytes(path));
                file.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
                form.Add(file, "image", Path.GetFileName(path));
                form.Add(new StringContent(k.ToString(System.Globalization.CultureInfo.InvariantCulture)), "k");
                if (index is not null) form.Add(new StringContent(index), "index");
                return new HttpRequestMessage(HttpMethod.Post, "/api/search") { Content = form };
            })));
        }
        return results;
    }

    static IReadOnlyList<SearchHit> Send(HttpClient http, string server, Func<HttpRequestMessage> make)
    {
        using var request = make();
        HttpResponseMessage response;
        try { response = http.Send(request); }
        catch (HttpRequestException e) { throw new CliException($"--server {server}: {e.Message}"); }
        catch (TaskCanceledException) { throw new CliException($"--server {server}: no answer within {http.Timeout.TotalSeconds:F0} s"); }
        using (response)
        {
            using var reader = new StreamReader(response.Content.ReadAsStream());
            string body = reader.ReadToEnd();
            JsonElement doc;
            try { doc = JsonDocument.Parse(body).RootElement; }
            catch (JsonException) { throw new CliException($"--server {server}: HTTP {(int)response.StatusCode}, not a clip serve answer"); }
            if (!response.IsSuccessStatusCode)
                throw new CliException($"--server {server}: {(doc.ValueKind == JsonValueKind.Object && doc.TryGetProperty("error", out var e) ? e.GetString() : $"HTTP {(int)response.StatusCode}")}");
            if (doc.ValueKind != JsonValueKind.Object || !doc.TryGetProperty("results", out var hits) || hits.ValueKind != JsonValueKind.Array)
                throw new CliException($"--server {server}: the answer has no 'results'; is this a clip serve?");
            return hits.EnumerateArray().Select(h => new SearchHit(h.GetProperty("path").GetString() ?? "", h.GetProperty("score").GetSingle())).ToList();
        }
    }
}
