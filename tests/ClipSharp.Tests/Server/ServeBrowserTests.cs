using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Playwright;
using Xunit.Abstractions;

namespace ClipSharp.Tests.Server;

/// <summary>
/// The page in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright for .NET; test.sh installs the browser):
/// type a query and see thumbnails, page through and reload the URL, upload and drop an image, "more like this",
/// "search by its caption", zero-shot with typed labels. Every wait is on an element or attribute the page sets.
/// Each test saves a screenshot under bin/…/screenshots/.
/// </summary>
[Collection("serve")]
public sealed class ServeBrowserTests(ServeFixture f, ITestOutputHelper output) : IAsyncLifetime
{
    public const string Chromium = "/usr/bin/chromium";
    IPlaywright? playwright;
    IBrowser? browser;

    public static string ScreenshotDir => Path.Combine(AppContext.BaseDirectory, "screenshots");

    public async Task InitializeAsync()
    {
        if (!File.Exists(Chromium))
            throw new InvalidOperationException($"{Chromium} not found: ./test.sh installs Debian's chromium (apt-get install chromium) before the tests");
        playwright = await Playwright.CreateAsync();
        browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = Chromium,
            Headless = true,
            Args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
        });
    }

    public async Task DisposeAsync()
    {
        if (browser is not null) await browser.DisposeAsync();
        playwright?.Dispose();
    }

    async Task<IPage> Open(string path = "/")
    {
        var page = await browser!.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1280, Height = 860 } });
        page.SetDefaultTimeout(60_000); // a guard against a hang, not what is tested
        var errors = new List<string>();
        page.PageError += (_, e) => errors.Add(e);
        page.Console += (_, m) => { if (m.Type == "error") output.WriteLine($"console: {m.Text}"); };
        await page.GotoAsync(new Uri(f.Server.Address, path).ToString());
        await page.Locator("body[data-ready=true]").WaitForAsync();
        Assert.Empty(errors);
        return page;
    }

    static Task ThumbnailsLoaded(IPage page) =>
        page.WaitForFunctionAsync("() => { const imgs = [...document.querySelectorAll('#results img')]; return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0); }");

    async Task Shot(IPage page, string name)
    {
        Directory.CreateDirectory(ScreenshotDir);
        string path = Path.Combine(ScreenshotDir, name + ".png");
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = path, FullPage = true });
        output.WriteLine($"screenshot: {path}");
    }

    async Task<string[]> ApiPaths(string query)
    {
        var doc = JsonDocument.Parse(await f.Http.GetStringAsync(query)).RootElement;
        return doc.GetProperty("results").EnumerateArray().Select(r => r.GetProperty("path").GetString()!).ToArray();
    }

    [Fact]
    public async Task TypeAQuerySeeThumbnailsPageThroughAndReloadFromTheUrl()
    {
        var page = await Open();
        await page.Locator("#q").FillAsync("a red circle");
        await page.Locator("#q").PressAsync("Enter");
        await page.Locator("#status[data-state=done]").WaitForAsync();
        await ThumbnailsLoaded(page);
        Assert.Equal(24, await page.Locator("#results .card").CountAsync());
        Assert.Contains("Results 1–24 of 33 images", await page.Locator("#status").TextContentAsync());
        Assert.Matches(new Regex(@"\?q=a(\+|%20)red(\+|%20)circle"), page.Url);
        var expected = await ApiPaths("/api/search?text=a%20red%20circle&k=33");
        var shown = await page.Locator("#results .card").EvaluateAllAsync<string[]>("cards => cards.map(c => c.dataset.path)");
        Assert.Equal(expected[..24].Order(), shown.Order()); // ties between identical files may swap
        Assert.True(await page.Locator("#results .card .caption").CountAsync() >= 20, "captions from photos.captions.csv");
        await Shot(page, "1-text-search");

        await page.Locator("#next").ClickAsync();
        await page.GetByText("Results 25–33 of 33 images").WaitForAsync();
        await ThumbnailsLoaded(page);
        Assert.Equal(9, await page.Locator("#results .card").CountAsync());
        Assert.True(await page.Locator("#next").IsDisabledAsync());
        Assert.Contains("page=2", page.Url);

        // The URL alone reproduces the search.
        var again = await Open(new Uri(page.Url).PathAndQuery);
        await again.GetByText("Results 25–33 of 33 images").WaitForAsync();
        Assert.Equal("a red circle", await again.Locator("#q").InputValueAsync());
    }

    [Fact]
    public async Task UploadAnImageOrDropOneAndSeeItFirst()
    {
        var page = await Open();
        await page.Locator("#image-input").SetInputFilesAsync(Path.Combine(f.Folder, "shapes/shape07.png"));
        await page.Locator("#status[data-state=done]").WaitForAsync();
        await ThumbnailsLoaded(page);
        Assert.Equal("shapes/shape07.png", await page.Locator("#results .card").First.GetAttributeAsync("data-path"));
        Assert.True(await page.Locator("#query-banner").IsVisibleAsync());
        Assert.Contains("your image", await page.Locator("#status").TextContentAsync());
        await Shot(page, "2-image-upload");

        // Drag and drop: a drop event carrying a file, as the browser delivers one.
        string b64 = Convert.ToBase64String(f.Shape(20));
        await page.EvaluateAsync(@"b64 => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], 'dropped.png', { type: 'image/png' }));
            document.body.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
        }", b64);
        await page.Locator("#results .card[data-path='shapes/shape20.png']").First.WaitForAsync();
        await page.Locator("#status[data-state=done]").WaitForAsync();
        Assert.Equal("shapes/shape20.png", await page.Locator("#results .card").First.GetAttributeAsync("data-path"));
        Assert.Contains("dropped.png", await page.Locator("#query-text").TextContentAsync());
    }

    [Fact]
    public async Task MoreLikeThisAndSearchByCaption()
    {
        var page = await Open("/?q=a%20blue%20square");
        await page.Locator("#status[data-state=done]").WaitForAsync();
        var third = page.Locator("#results .card").Nth(2);
        string path = (await third.GetAttributeAsync("data-path"))!;
        await third.Locator(".more-like").ClickAsync();
        await page.GetByText($"images like {path}").WaitForAsync();
        await ThumbnailsLoaded(page);
        var first = page.Locator("#results .card").First;
        var firstPath = await first.GetAttributeAsync("data-path");
        var twins = await ApiPaths($"/api/search?similar={Uri.EscapeDataString(path)}&k=2");
        Assert.Contains(firstPath, twins); // itself, or its identical copy
        Assert.Equal("1.000", await first.Locator(".score").TextContentAsync());
        Assert.Contains("similar=", page.Url);
        await Shot(page, "3-more-like-this");

        var withCaption = page.Locator("#results .card:has(.by-caption)").First;
        string caption = (await withCaption.Locator(".caption").TextContentAsync())!;
        await withCaption.Locator(".by-caption").ClickAsync();
        await page.GetByText($"ranked by similarity to “{caption}”").WaitForAsync();
        Assert.Equal(caption, await page.Locator("#q").InputValueAsync());
    }

    [Fact]
    public async Task ClassifyAnImageWithTypedLabels()
    {
        var page = await Open();
        await page.Locator("#tab-zeroshot").ClickAsync();
        await page.Locator("#zs-input").SetInputFilesAsync(Path.Combine(f.Folder, "shapes/shape00.png"));
        await page.Locator("#zs-preview:not([hidden])").WaitForAsync();
        string[] labels = ["a red circle", "a blue square", "a green triangle", "a yellow cross"];
        await page.Locator("#zs-labels").FillAsync(string.Join("\n", labels));
        await page.Locator("#zs-template").FillAsync("a photo of {}.");
        await page.Locator("#zs-run").ClickAsync();
        await page.Locator("#zs-status[data-state=done]").WaitForAsync();
        Assert.Equal(4, await page.Locator("#zs-bars li").CountAsync());
        var shown = await page.Locator("#zs-bars li").EvaluateAllAsync<string[][]>(
            "lis => lis.map(li => [li.querySelector('.label').textContent, li.querySelector('.pct').textContent])");
        double sum = shown.Sum(s => double.Parse(s[1].Replace(" %", ""), System.Globalization.CultureInfo.InvariantCulture));
        Assert.InRange(sum, 99.5, 100.5);

        using var form = ServeFixture.Form(f.Shape(0), ("labels", string.Join("\n", labels)), ("template", "a photo of {}."));
        var api = JsonDocument.Parse(await (await f.Http.PostAsync("/api/classify", form)).Content.ReadAsStringAsync()).RootElement;
        var expected = api.GetProperty("labels").EnumerateArray().Select(l => l.GetProperty("label").GetString()).ToArray();
        Assert.Equal(expected, shown.Select(s => s[0]));
        await Shot(page, "4-zero-shot");
    }
}
