# ruff: noqa: RUF001  (Chinese text uses its own full-width punctuation)
"""The privacy center's words, Simplified Chinese first and English second, and the
choice between them: an explicit choice (the switch, kept in a cookie), else the browser's
``Accept-Language`` (the first of ``zh*`` / ``en*`` by weight), else Chinese."""

from __future__ import annotations

from typing import Final, Literal

__all__ = ["LANGUAGES", "TEXTS", "Language", "choose_language"]

Language = Literal["zh", "en"]
LANGUAGES: Final[tuple[Language, ...]] = ("zh", "en")
LANGUAGE_COOKIE: Final = "privacy_lang"

TEXTS: Final[dict[Language, dict[str, str]]] = {
    "zh": {
        "html_lang": "zh-CN",
        "title": "隐私中心",
        "switch": "English",
        "switch_lang": "en",
        "skip": "跳到正文",
        "nav": "隐私中心导航",
        "nav_consents": "我的授权",
        "nav_ledger": "处理记录",
        "nav_requests": "权利请求",
        "sign_in": "登录",
        "sign_in_intro": "使用手机号和密码登录，管理您的个人信息。",
        "phone": "手机号",
        "password": "密码",
        "sign_out": "退出登录",
        "signed_out": "您已退出登录，或登录已过期，请重新登录。",
        "consents_intro": "以下功能只有在您同意后才会处理您的个人信息。您可以随时撤回，"
        "撤回不影响撤回前基于同意已进行的处理。",
        "purpose": "用途",
        "meaning": "含义",
        "state": "当前状态",
        "granted": "已同意",
        "not_granted": "未同意",
        "grant": "同意",
        "withdraw": "撤回",
        "separate": "单独同意",
        "additional": "附加功能",
        "disclosure": "同意前须告知的事项",
        "per_recipient": "向境外提供个人信息须按每个境外接收方取得您的单独同意。"
        "以下是您的信息已提供或待提供的接收方，以及您曾作出决定的接收方。",
        "policy_section": "隐私政策条款",
        "ledger_intro": "谁在何时、为何目的、依据何种法律基础处理了您的哪些个人信息。",
        "chain_valid": "记录链完整：未发现篡改。",
        "chain_invalid": "记录链校验失败：请联系个人信息保护负责人。",
        "filter": "筛选",
        "all_purposes": "全部用途",
        "when": "时间",
        "who": "处理者",
        "action": "操作",
        "categories": "信息类别",
        "legal_basis": "法律依据",
        "no_entries": "暂无处理记录。",
        "requests_intro": "您可以查阅、复制您的个人信息，或要求删除。每项请求由各服务分别答复，"
        "须在法定期限内完成。",
        "request_access": "申请导出我的个人信息",
        "access_explained": "我们汇总各服务持有的您的个人信息，完成后可在此下载（JSON 格式）。",
        "request_deletion": "申请删除账户及个人信息",
        "deletion_explained": "删除后账户将注销，无法恢复。法律要求我们保存的部分信息"
        "（例如交易记录、发票及税务资料须依《电子商务法》《税收征收管理法》保存）"
        "将仅作存储、不再用于任何其他处理，保存期满后删除；各服务答复后会在下方逐项列出"
        "保留的信息类别、法律依据和保存期限。",
        "deletion_confirm": "我了解删除后无法恢复",
        "kind": "类型",
        "status": "状态",
        "filed": "提交时间",
        "due": "截止日期",
        "download": "下载导出文件",
        "kept": "依法保留",
        "until": "保存至",
        "no_requests": "暂无权利请求。",
        "kind_access": "查阅复制",
        "kind_deletion": "删除",
        "status_open": "处理中",
        "status_completed": "已完成",
        "done_access": "已提交导出申请。",
        "done_deletion": "已提交删除申请。",
        "done_consent": "授权已更新。",
        "error": "出错了",
        # overseas recipients, cross-border consents per recipient, the policy's versions
        "nav_overseas": "境外接收方",
        "overseas_intro": "您的哪些个人信息被提供给了哪些境外接收方：接收方名称、所在国家或地区、"
        "处理目的、提供的信息类型和日期。您可以按接收方说明的方式向其行使权利。",
        "no_transfers": "您的个人信息尚未提供给任何境外接收方。",
        "older": "更早的记录",
        "newer": "较新的记录",
        "country_region": "国家或地区",
        "contact": "联系方式",
        "processing_method": "处理方式",
        "data_types": "信息类型",
        "how_to_exercise_rights": "如何向其行使权利",
        "requested": "请求时间",
        "provided": "提供时间",
        "transfers_to": "提供记录",
        "basis_security_assessment": "数据出境安全评估",
        "basis_certification": "个人信息保护认证",
        "basis_standard_contract": "个人信息出境标准合同",
        "basis_consent_only": "您的单独同意（未达申报数量）",
        "transfer_awaiting_basis": "等待法律依据，尚未提供",
        "transfer_awaiting_consent": "等待您的单独同意，尚未提供",
        "transfer_ready": "正在提供",
        "transfer_delivered": "已提供",
        "transfer_refused": "未提供",
        "no_recipients": "暂无需要您决定的境外接收方。",
        "recipient_disclosure": "境外接收方告知事项",
        "cross_border_shown": "向境外接收方提供个人信息的单独同意",
        "disclosure_changed": "接收方的告知事项已更新，请重新阅读后再决定。",
        "nav_policy": "隐私政策",
        "policy_intro": "隐私政策的每个版本都会保留。您可以阅读任一版本，"
        "并比较两个版本之间的变化。",
        "policy_versions": "版本历史",
        "version": "版本",
        "effective": "生效日期",
        "published": "发布时间",
        "summary": "变更摘要",
        "change": "变更类型",
        "major": "重大变更（需重新同意）",
        "minor": "一般变更",
        "version_upcoming": "即将生效",
        "version_current": "现行版本",
        "version_superseded": "已被取代",
        "agreed": "您已同意此版本",
        "read_version": "阅读全文",
        "compare_previous": "与上一版比较",
        "compare": "比较两个版本",
        "from_version": "原版本",
        "to_version": "新版本",
        "show_diff": "查看变化",
        "policy_text": "政策全文",
        "diff_title": "版本比较",
        "diff_summary": "新增 {added} 行，删除 {removed} 行。",
        "diff_same": "两个版本的文本相同。",
        "line_added": "新增",
        "line_removed": "删除",
        "back_to_versions": "返回版本历史",
    },
    "en": {
        "html_lang": "en",
        "title": "Privacy center",
        "switch": "中文",
        "switch_lang": "zh",
        "skip": "Skip to content",
        "nav": "Privacy center",
        "nav_consents": "My consents",
        "nav_ledger": "Processing ledger",
        "nav_requests": "Rights requests",
        "sign_in": "Sign in",
        "sign_in_intro": "Sign in with your phone number and password to manage your data.",
        "phone": "Phone number",
        "password": "Password",
        "sign_out": "Sign out",
        "signed_out": "You are signed out, or your sign-in expired; please sign in again.",
        "consents_intro": "These functions process your personal information only with your "
        "consent. You can withdraw at any time; what was done before stays lawful.",
        "purpose": "Purpose",
        "meaning": "What it means",
        "state": "Now",
        "granted": "Granted",
        "not_granted": "Not granted",
        "grant": "Grant",
        "withdraw": "Withdraw",
        "separate": "Separate consent",
        "additional": "Additional function",
        "disclosure": "What you are told before consenting",
        "per_recipient": "Providing your data abroad needs your separate consent for each "
        "overseas recipient. Below are the recipients your data went to or waits for, and "
        "those you decided on before.",
        "policy_section": "Privacy policy section",
        "ledger_intro": "Who processed which of your data, when, for what and on which "
        "legal basis.",
        "chain_valid": "The ledger's chain is intact: nothing was altered.",
        "chain_invalid": "The ledger's chain does not verify: contact the privacy officer.",
        "filter": "Filter",
        "all_purposes": "All purposes",
        "when": "When",
        "who": "Who",
        "action": "Action",
        "categories": "Categories",
        "legal_basis": "Legal basis",
        "no_entries": "No processing recorded yet.",
        "requests_intro": "You can read and copy your personal information, or have it "
        "deleted. Each service answers a request within the legal deadline.",
        "request_access": "Request an export of my data",
        "access_explained": "We gather what every service holds about you; once complete, "
        "download it here (JSON).",
        "request_deletion": "Request deletion of my account and data",
        "deletion_explained": "Deletion closes your account for good. What the law makes us "
        "keep (such as transaction records, invoices and tax records under the E-Commerce "
        "Law and the Tax Collection Law) is only stored, never otherwise processed, and "
        "deleted when its period ends; once each service answers, what it keeps, why and "
        "until when is listed below.",
        "deletion_confirm": "I understand deletion cannot be undone",
        "kind": "Kind",
        "status": "Status",
        "filed": "Filed",
        "due": "Due",
        "download": "Download the export",
        "kept": "Kept by law",
        "until": "until",
        "no_requests": "No rights requests yet.",
        "kind_access": "Access",
        "kind_deletion": "Deletion",
        "status_open": "In progress",
        "status_completed": "Completed",
        "done_access": "Your export request is filed.",
        "done_deletion": "Your deletion request is filed.",
        "done_consent": "Your consent is updated.",
        "error": "Something went wrong",
        # overseas recipients, cross-border consents per recipient, the policy's versions
        "nav_overseas": "Overseas recipients",
        "overseas_intro": "Which of your data was provided to which overseas recipients: "
        "the recipient's name, country or region, purpose, the data types and the date. "
        "You exercise your rights with a recipient as it says.",
        "no_transfers": "None of your data has been provided to an overseas recipient.",
        "older": "Older records",
        "newer": "Newer records",
        "country_region": "Country or region",
        "contact": "Contact",
        "processing_method": "How it is processed",
        "data_types": "Data types",
        "how_to_exercise_rights": "How to exercise your rights",
        "requested": "Requested",
        "provided": "Provided",
        "transfers_to": "What was provided",
        "basis_security_assessment": "CAC security assessment",
        "basis_certification": "Personal information protection certification",
        "basis_standard_contract": "Standard contract for providing data abroad",
        "basis_consent_only": "Your separate consent (below the filing thresholds)",
        "transfer_awaiting_basis": "Waiting for a legal basis; not provided",
        "transfer_awaiting_consent": "Waiting for your separate consent; not provided",
        "transfer_ready": "Being provided",
        "transfer_delivered": "Provided",
        "transfer_refused": "Not provided",
        "no_recipients": "No overseas recipient waits for your decision.",
        "recipient_disclosure": "What the overseas recipient discloses",
        "cross_border_shown": "Separate consent to provide personal information to an "
        "overseas recipient",
        "disclosure_changed": "The recipient's disclosure changed; please read it again "
        "before deciding.",
        "nav_policy": "Privacy policy",
        "policy_intro": "Every version of the privacy policy is kept. Read any version and "
        "compare what changed between two.",
        "policy_versions": "Version history",
        "version": "Version",
        "effective": "Effective",
        "published": "Published",
        "summary": "Summary of changes",
        "change": "Change",
        "major": "Major change (needs your renewed consent)",
        "minor": "Minor change",
        "version_upcoming": "Upcoming",
        "version_current": "In effect",
        "version_superseded": "Superseded",
        "agreed": "You agreed to this version",
        "read_version": "Read the text",
        "compare_previous": "Compare with the previous version",
        "compare": "Compare two versions",
        "from_version": "From version",
        "to_version": "To version",
        "show_diff": "Show the changes",
        "policy_text": "The policy's text",
        "diff_title": "Changes between versions",
        "diff_summary": "Lines added: {added}; lines removed: {removed}.",
        "diff_same": "The two versions' texts are the same.",
        "line_added": "added",
        "line_removed": "removed",
        "back_to_versions": "Back to the version history",
    },
}


def _weighted(accept_language: str) -> list[tuple[float, int, str]]:
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                weight = 0.0
        ranked.append((-weight, position, tag.strip().lower()))
    return sorted(ranked)


def choose_language(chosen: str | None, accept_language: str | None) -> Language:
    """The page's language: the person's choice, else the browser's, else Chinese."""
    if chosen in LANGUAGES:
        return "zh" if chosen == "zh" else "en"
    for negative_weight, _, tag in _weighted(accept_language or ""):
        if negative_weight >= 0:
            break
        if tag.startswith("zh"):
            return "zh"
        if tag.startswith("en"):
            return "en"
    return "zh"


# ------------------------------------------------------------ rights requests, ledger filters,
# anti-forgery (kept apart from the words above, so that pages added beside them merge apart)
_MORE: Final[dict[Language, dict[str, str]]] = {
    "zh": {
        "refused_title": "请求已拒绝",
        "refused_explained": "此表单已过期，或并非从本站提交，因此未做任何更改。"
        "请返回隐私中心页面后重新操作。",
        "back": "返回隐私中心",
        "category": "信息类别",
        "all_categories": "全部类别",
        "all_actors": "全部处理者",
        "since": "开始日期",
        "until_day": "结束日期",
        "clear_filters": "清除筛选",
        "ledger_pages": "处理记录分页",
        "previous": "上一页",
        "next": "下一页",
        "showing": "第 {first}–{last} 条，共 {total} 条",
        "request_correction": "申请更正订单信息",
        "correction_explained": "订单发货前可更正收货人姓名、手机号、详细地址和邮政编码，"
        "发票开具前可更正发票抬头和邮箱。手机号（登录账号）和经权威机构核验的实名信息"
        "不能通过更正申请修改。订单服务会答复哪些已更正、哪些被拒绝及原因。",
        "order_number": "订单号",
        "order_hint": "见订单详情页，例如 ord_…",
        "field": "要更正的信息",
        "value": "更正后的内容",
        "field_consignee_name": "收货人姓名",
        "field_consignee_phone": "收货人手机号",
        "field_address_detail": "详细地址",
        "field_postal_code": "邮政编码",
        "field_invoice_title": "发票抬头",
        "field_invoice_email": "发票接收邮箱",
        "request_withdraw_all": "撤回全部授权",
        "withdraw_all_explained": "一次撤回您给予的所有同意（附加功能和单独同意，包括跨境传输）。"
        "基本功能不受影响；撤回前基于同意已进行的处理仍然有效。",
        "withdraw_all_confirm": "我要撤回全部授权",
        "kind_correction": "更正",
        "kind_withdraw_all": "撤回全部授权",
        "kind_restriction": "限制处理",
        "kind_explanation": "解释说明",
        "kind_portability": "转移",
        "status_overdue": "已逾期",
        "answers": "各服务的答复",
        "answer_pending": "待答复",
        "answer_overdue": "逾期未答复",
        "answer_done": "已完成",
        "answer_partial": "部分完成",
        "answer_refused": "已拒绝",
        "deleted": "已删除",
        "anonymised": "已匿名化",
        "kept_explained": "以下信息依法须继续保存：仅作存储，不作其他处理，到期后删除。",
        "done_correction": "已提交更正申请。",
        "done_withdraw_all": "已提交撤回全部授权的申请。",
        "missing_kind": "未知的请求类型。",
        "missing_order": "请填写订单号。",
        "missing_field": "请选择要更正的信息。",
        "missing_value": "请填写更正后的内容。",
    },
    "en": {
        "refused_title": "Request refused",
        "refused_explained": "This form has expired or was not sent from this site, so "
        "nothing was changed. Go back to the privacy center and try again.",
        "back": "Back to the privacy center",
        "category": "Data category",
        "all_categories": "All categories",
        "all_actors": "Anyone",
        "since": "From",
        "until_day": "To",
        "clear_filters": "Clear filters",
        "ledger_pages": "Ledger pages",
        "previous": "Previous page",
        "next": "Next page",
        "showing": "Entries {first}–{last} of {total}",
        "request_correction": "Request a correction of an order",
        "correction_explained": "Before an order ships, its consignee's name, phone number, "
        "street address and postal code can be corrected; before its invoice is issued, the "
        "invoice title and email. Your phone number (your login) and real-name data verified "
        "by the authority cannot be changed by a correction. The orders service answers what "
        "it corrected and what it refused, and why.",
        "order_number": "Order number",
        "order_hint": "as on the order's page, e.g. ord_…",
        "field": "What to correct",
        "value": "The correct value",
        "field_consignee_name": "Consignee's name",
        "field_consignee_phone": "Consignee's phone number",
        "field_address_detail": "Street address",
        "field_postal_code": "Postal code",
        "field_invoice_title": "Invoice title",
        "field_invoice_email": "Invoice email",
        "request_withdraw_all": "Withdraw every consent",
        "withdraw_all_explained": "Withdraws at once every consent you gave (additional "
        "functions and separate consents, transfers abroad included). Basic functions are "
        "not affected; what was done before stays lawful.",
        "withdraw_all_confirm": "I want to withdraw every consent",
        "kind_correction": "Correction",
        "kind_withdraw_all": "Withdraw all consents",
        "kind_restriction": "Restriction",
        "kind_explanation": "Explanation",
        "kind_portability": "Portability",
        "status_overdue": "Overdue",
        "answers": "Each service's answer",
        "answer_pending": "Pending",
        "answer_overdue": "Overdue",
        "answer_done": "Done",
        "answer_partial": "Partly done",
        "answer_refused": "Refused",
        "deleted": "Deleted",
        "anonymised": "Anonymised",
        "kept_explained": "What the law makes us keep: only stored, never otherwise "
        "processed, deleted when its period ends.",
        "done_correction": "Your correction request is filed.",
        "done_withdraw_all": "Your request to withdraw every consent is filed.",
        "missing_kind": "Unknown kind of request.",
        "missing_order": "Give the order number.",
        "missing_field": "Choose what to correct.",
        "missing_value": "Give the correct value.",
    },
}
for _language, _words in _MORE.items():
    TEXTS[_language].update(_words)
